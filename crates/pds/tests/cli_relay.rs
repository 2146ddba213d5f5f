//! `pds relay request-crawl` through the real binary, against local relay stubs.

use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};

type Calls = Arc<Mutex<Vec<Value>>>;

/// A relay stub answering `status` to requestCrawl; returns its URL and the bodies received.
async fn stub(status: StatusCode) -> (String, Calls) {
    async fn handler(
        State((calls, status)): State<(Calls, StatusCode)>,
        Json(body): Json<Value>,
    ) -> (StatusCode, Json<Value>) {
        calls.lock().unwrap().push(body);
        (
            status,
            Json(json!({"error": "InvalidRequest", "message": "stub"})),
        )
    }
    let calls: Calls = Arc::default();
    let app = axum::Router::new()
        .route("/xrpc/com.atproto.sync.requestCrawl", post(handler))
        .with_state((calls.clone(), status));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), calls)
}

async fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pds"));
    cmd.args(["relay", "request-crawl"]).args(args);
    cmd.env_remove("PDS_HOSTNAME").env_remove("PDS_CRAWLERS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn request_crawl_exit_codes() {
    let (ok, ok_calls) = stub(StatusCode::OK).await;
    let (no, no_calls) = stub(StatusCode::BAD_REQUEST).await;

    let out = run(&[&ok, "--hostname", "pds.example.com"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        ok_calls.lock().unwrap().as_slice(),
        &[json!({"hostname": "pds.example.com"})]
    );

    // Hosts from PDS_CRAWLERS, hostname from PDS_HOSTNAME; one refuses.
    let crawlers = format!("{ok}, {no}");
    let out = run(
        &[],
        &[
            ("PDS_CRAWLERS", &crawlers),
            ("PDS_HOSTNAME", "pds.other.com"),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(ok_calls.lock().unwrap().len(), 2);
    assert_eq!(
        no_calls.lock().unwrap().as_slice(),
        &[json!({"hostname": "pds.other.com"})]
    );

    // Nothing listening: a network error.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let out = run(&[&closed, "--hostname", "x.example.com"], &[]).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    // No hostname, no hosts: configuration errors.
    assert_eq!(run(&[&ok], &[]).await.status.code(), Some(2));
    assert_eq!(
        run(&["--hostname", "x.example.com"], &[])
            .await
            .status
            .code(),
        Some(2)
    );
    assert_eq!(ok_calls.lock().unwrap().len(), 2);
}
