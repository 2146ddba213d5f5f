//! Proxying to an app view and other services, end to end: the real `pds serve` (dev mode,
//! loopback) configured with an app view and a report service that are a stand-in built with
//! `@atproto/xrpc-server` (`tests/interop/scripts/appview_standin.mjs`), which checks every
//! service-auth token with that package's own `verifyJwt`, resolving the account's key through
//! our embedded PLC directory. The official client (`@atproto/api`) calls getTimeline,
//! getProfile, a custom feed, createReport and chat (through an `atproto-proxy` header naming a
//! service in a DID document) through our PDS; read-after-write, upstream errors, unreachable
//! and unknown services, and refused tokens are checked there too.
//!
//! The second test needs no Node: what the PDS answers by itself (no service configured, methods
//! never forwarded, no session, an app view that does not answer).

mod node;

use node::{assert_all_passed, node_with, run_script};

mod harness;

use harness::{Server, create_account, free_port};
use serde_json::Value;

const APP_VIEW_DID: &str = "did:web:appview.test";
const REPORT_DID: &str = "did:web:moderation.test";

#[tokio::test(flavor = "multi_thread")]
async fn official_client_through_our_pds_to_a_stand_in_app_view() {
    let node = node_with("@atproto/xrpc-server");
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let server = Server::start(
        data.path(),
        &[
            ("PDS_BSKY_APP_VIEW_URL", &url),
            ("PDS_BSKY_APP_VIEW_DID", APP_VIEW_DID),
            ("PDS_REPORT_SERVICE_URL", &url),
            ("PDS_REPORT_SERVICE_DID", REPORT_DID),
        ],
    )
    .await;
    let plc = format!("http://127.0.0.1:{}", server.plc_port);
    let args = vec![
        server.base.clone(),
        plc,
        port.to_string(),
        APP_VIEW_DID.to_owned(),
        REPORT_DID.to_owned(),
    ];
    let script = "scripts/appview_standin.mjs";
    let stdout = run_script(node, script, args).await;
    assert_all_passed(script, &stdout);
    println!("{stdout}");
    drop(server);
}

/// GETs `method` with an optional bearer token and extra headers; returns status and body.
async fn call(
    client: &reqwest::Client,
    server: &Server,
    method: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = client.get(server.xrpc(method));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn what_the_pds_answers_by_itself() {
    let client = reqwest::Client::new();
    // No app view configured: nowhere to send app.bsky calls.
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]).await;
    let alice = create_account(&client, &server, "alice").await;
    let token = Some(alice.access.as_str());
    let (status, body) = call(&client, &server, "app.bsky.feed.getTimeline", token, &[]).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["message"],
        "No service configured for app.bsky.feed.getTimeline"
    );
    let (status, body) = call(&client, &server, "app.bsky.unspecced.getConfig", token, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("InvalidRequest"))
    );
    // A report with no report service and no proxy header.
    let res = client
        .post(server.xrpc("com.atproto.moderation.createReport"))
        .bearer_auth(&alice.access)
        .json(
            &serde_json::json!({"reasonType": "com.atproto.moderation.defs#reasonSpam",
            "subject": {"$type": "com.atproto.admin.defs#repoRef", "did": alice.did}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    // Malformed proxy headers.
    for (header, message) in [
        ("did:web:x.test", "no service id specified in proxy header"),
        ("#bsky_chat", "no did specified in proxy header"),
        ("did:web:x.test#a#b", "invalid proxy header format"),
    ] {
        let (status, body) = call(
            &client,
            &server,
            "chat.bsky.convo.listConvos",
            token,
            &[("atproto-proxy", header)],
        )
        .await;
        assert_eq!(
            (status, body["message"].as_str()),
            (400, Some(message)),
            "{header}"
        );
    }
    drop(server);

    // An app view that does not answer.
    let data = tempfile::tempdir().unwrap();
    let dead = format!("http://127.0.0.1:{}", free_port());
    let server = Server::start(
        data.path(),
        &[
            ("PDS_BSKY_APP_VIEW_URL", &dead),
            ("PDS_BSKY_APP_VIEW_DID", APP_VIEW_DID),
        ],
    )
    .await;
    let alice = create_account(&client, &server, "alice").await;
    let token = Some(alice.access.as_str());
    let (status, body) = call(&client, &server, "app.bsky.feed.getTimeline", token, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (502, Some("UpstreamFailure")),
        "{body}"
    );
    let (status, body) = call(&client, &server, "app.bsky.graph.getLists", token, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (502, Some("UpstreamFailure")),
        "{body}"
    );
    // No session: refused before anything is sent.
    let (status, body) = call(&client, &server, "app.bsky.graph.getLists", None, &[]).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("AuthMissing")));
    // A com.atproto method we do not serve is never forwarded.
    let (status, body) = call(&client, &server, "com.atproto.temp.nope", token, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (501, Some("MethodNotImplemented"))
    );
    // Not an NSID.
    let (status, _) = call(&client, &server, "nope", token, &[]).await;
    assert_eq!(status, 404);
    drop(server);
}
