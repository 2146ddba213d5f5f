//! The client against a local axum server on 127.0.0.1:0.

use std::collections::BTreeMap;

use atp_syntax::Nsid;
use axum::Router;
use axum::body::Body as AxumBody;
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Value, json};
use xrpc_client::{Body, XrpcClient, XrpcError};

const FIVE_MB: usize = 5 * 1024 * 1024;

fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

async fn echo_params(
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> impl IntoResponse {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    axum::Json(json!({
        "pairs": pairs,
        "authorization": header("authorization"),
        "proxy": header("atproto-proxy"),
    }))
}

async fn fail(Query(q): Query<BTreeMap<String, String>>) -> impl IntoResponse {
    match q.get("kind").map(String::as_str) {
        Some("400") => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "InvalidRequest", "message": "bad cursor"})),
        )
            .into_response(),
        Some("401") => (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "AuthenticationRequired"})),
        )
            .into_response(),
        Some("501") => (
            StatusCode::NOT_IMPLEMENTED,
            axum::Json(
                json!({"error": "MethodNotImplemented", "message": "Method Not Implemented"}),
            ),
        )
            .into_response(),
        _ => (StatusCode::BAD_GATEWAY, "plain text").into_response(),
    }
}

async fn upload(headers: HeaderMap, body: AxumBody) -> impl IntoResponse {
    let mut stream = body.into_data_stream();
    let (mut size, mut mismatches) = (0usize, 0usize);
    while let Some(chunk) = stream.next().await {
        for b in chunk.unwrap() {
            mismatches += usize::from(b != pattern(size));
            size += 1;
        }
    }
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    axum::Json(json!({"size": size, "mismatches": mismatches, "contentType": ct}))
}

async fn download() -> impl IntoResponse {
    let chunks = futures::stream::iter((0..FIVE_MB).step_by(64 * 1024).map(|start| {
        let end = (start + 64 * 1024).min(FIVE_MB);
        Ok::<_, std::io::Error>(Bytes::from((start..end).map(pattern).collect::<Vec<u8>>()))
    }));
    (
        [("content-type", "application/vnd.ipld.car")],
        AxumBody::from_stream(chunks),
    )
}

async fn big() -> impl IntoResponse {
    axum::Json(json!({"data": "x".repeat(4096)}))
}

async fn serve() -> String {
    let app = Router::new()
        .route("/xrpc/com.example.echoParams", get(echo_params))
        .route(
            "/xrpc/com.example.echo",
            post(|axum::Json(v): axum::Json<Value>| async move { axum::Json(json!({"got": v})) }),
        )
        .route("/xrpc/com.example.empty", post(|| async { StatusCode::OK }))
        .route("/xrpc/com.example.fail", get(fail))
        .route("/xrpc/com.example.upload", post(upload))
        .route("/xrpc/com.example.download", get(download))
        .route("/xrpc/com.example.big", get(big));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn nsid(s: &str) -> Nsid {
    s.parse().unwrap()
}

#[tokio::test]
async fn query_sends_params_credentials_and_headers() {
    let client = XrpcClient::new(&serve().await)
        .unwrap()
        .with_bearer("tok")
        .unwrap();
    #[derive(serde::Serialize)]
    struct Params {
        limit: u32,
        cursor: Option<String>,
        uris: Vec<String>,
    }
    let params = Params {
        limit: 5,
        cursor: None,
        uris: vec!["at://a".into(), "at://b c".into()],
    };
    let out: Value = client
        .clone()
        .with_header("atproto-proxy", "did:web:api.example#svc")
        .unwrap()
        .query(&nsid("com.example.echoParams"), &params)
        .await
        .unwrap();
    assert_eq!(
        out["pairs"],
        json!([["limit", "5"], ["uris", "at://a"], ["uris", "at://b c"]])
    );
    assert_eq!(out["authorization"], "Bearer tok");
    assert_eq!(out["proxy"], "did:web:api.example#svc");

    // The per-call header was on a clone only; basic replaces bearer.
    let out: Value = client
        .with_basic("admin", "secret")
        .unwrap()
        .query(&nsid("com.example.echoParams"), &())
        .await
        .unwrap();
    assert_eq!(out["proxy"], Value::Null);
    assert_eq!(out["authorization"], "Basic YWRtaW46c2VjcmV0");
    assert_eq!(out["pairs"], json!([]));
}

#[tokio::test]
async fn procedure_round_trips_json() {
    let client = XrpcClient::new(&serve().await).unwrap();
    let out: Value = client
        .procedure(&nsid("com.example.echo"), &json!({"a": [1, 2]}))
        .await
        .unwrap();
    assert_eq!(out, json!({"got": {"a": [1, 2]}}));
    let (): () = client
        .procedure(&nsid("com.example.empty"), &json!({}))
        .await
        .unwrap();
}

#[tokio::test]
async fn error_bodies_map_to_response_errors() {
    let client = XrpcClient::new(&serve().await).unwrap();
    let call = |kind: &'static str| {
        let client = client.clone();
        async move {
            client
                .query::<_, Value>(&nsid("com.example.fail"), &json!({"kind": kind}))
                .await
                .unwrap_err()
        }
    };
    match call("400").await {
        XrpcError::Response {
            status,
            error,
            message,
        } => {
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert_eq!(error.as_deref(), Some("InvalidRequest"));
            assert_eq!(message.as_deref(), Some("bad cursor"));
        }
        other => panic!("400: {other:?}"),
    }
    let e = call("401").await;
    assert_eq!(e.status(), Some(StatusCode::UNAUTHORIZED));
    assert_eq!(e.error_name(), Some("AuthenticationRequired"));
    let e = call("501").await;
    assert_eq!(e.status(), Some(StatusCode::NOT_IMPLEMENTED));
    assert_eq!(e.error_name(), Some("MethodNotImplemented"));
    match call("other").await {
        XrpcError::Response {
            status,
            error: None,
            message: None,
        } => assert_eq!(status, StatusCode::BAD_GATEWAY),
        other => panic!("502: {other:?}"),
    }
    // An unknown method on our test server is a 404 with no error body.
    let e = client
        .query::<_, Value>(&nsid("com.example.missing"), &())
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::NOT_FOUND));
}

#[tokio::test]
async fn streams_a_5mb_upload() {
    let client = XrpcClient::new(&serve().await).unwrap();
    // Generated lazily, 64 KiB at a time: the whole body never exists in memory at once.
    let chunks = futures::stream::iter((0..FIVE_MB).step_by(64 * 1024).map(|start| {
        let end = (start + 64 * 1024).min(FIVE_MB);
        Ok::<_, std::io::Error>(Bytes::from((start..end).map(pattern).collect::<Vec<u8>>()))
    }));
    let out: Value = client
        .procedure_bytes(
            &nsid("com.example.upload"),
            "application/vnd.ipld.car",
            Body::wrap_stream(chunks),
        )
        .await
        .unwrap();
    assert_eq!(
        out,
        json!({"size": FIVE_MB, "mismatches": 0, "contentType": "application/vnd.ipld.car"})
    );
}

#[tokio::test]
async fn streams_a_5mb_download() {
    let client = XrpcClient::new(&serve().await).unwrap();
    let (headers, mut stream) = client
        .query_stream(&nsid("com.example.download"), &())
        .await
        .unwrap();
    assert_eq!(
        headers.get("content-type").unwrap(),
        "application/vnd.ipld.car"
    );
    let (mut size, mut largest) = (0usize, 0usize);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        largest = largest.max(chunk.len());
        for b in chunk {
            assert_eq!(b, pattern(size), "byte {size}");
            size += 1;
        }
    }
    assert_eq!(size, FIVE_MB);
    assert!(largest < FIVE_MB, "the body arrived in one piece");
    let e = client
        .query_stream(&nsid("com.example.fail"), &json!({"kind": "400"}))
        .await
        .err()
        .unwrap();
    assert_eq!(e.error_name(), Some("InvalidRequest"));
}

#[tokio::test]
async fn oversized_json_is_refused() {
    let client = XrpcClient::new(&serve().await)
        .unwrap()
        .with_max_json_bytes(1024);
    let e = client
        .query::<_, Value>(&nsid("com.example.big"), &())
        .await
        .unwrap_err();
    assert!(matches!(e, XrpcError::TooLarge { limit: 1024 }), "{e:?}");
    let ok: Value = client
        .with_max_json_bytes(8192)
        .query(&nsid("com.example.big"), &())
        .await
        .unwrap();
    assert_eq!(ok["data"].as_str().map(str::len), Some(4096));
}
