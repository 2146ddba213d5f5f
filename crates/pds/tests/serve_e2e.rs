//! End to end: start the real `pds serve` binary (embedded PLC directory on its own port, data
//! in a temp dir), create an account and a record over HTTP, and read them back, including the
//! DID document from the PLC directory.

mod harness;

use serde_json::{Value, json};

use harness::Server;

async fn post(client: &reqwest::Client, url: String, token: Option<&str>, body: Value) -> Value {
    harness::post(client, &url, token, &body).await.ok(&url)
}

#[tokio::test]
async fn serve_create_account_and_record() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]).await;
    let (port, plc_port) = (server.port, server.plc_port);
    let client = reqwest::Client::new();
    let base = server.base.clone();

    let session = post(
        &client,
        format!("{base}/xrpc/com.atproto.server.createAccount"),
        None,
        json!({"handle": "alice.test", "email": "alice@example.com", "password": "hunter22"}),
    )
    .await;
    let did = session["did"].as_str().unwrap();
    let token = session["accessJwt"].as_str().unwrap();

    let doc: Value = client
        .get(format!("http://127.0.0.1:{plc_port}/{did}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["alsoKnownAs"], json!(["at://alice.test"]));
    assert_eq!(
        doc["service"][0]["serviceEndpoint"],
        format!("http://localhost:{port}")
    );

    let created = post(
        &client,
        format!("{base}/xrpc/com.atproto.repo.createRecord"),
        Some(token),
        json!({"repo": did, "collection": "app.bsky.feed.post",
               "record": {"$type": "app.bsky.feed.post", "text": "hello", "createdAt": "2024-01-01T00:00:00.000Z"}}),
    )
    .await;
    let rkey = created["uri"].as_str().unwrap().rsplit('/').next().unwrap();
    let record: Value = client
        .get(format!(
            "{base}/xrpc/com.atproto.repo.getRecord?repo=alice.test&collection=app.bsky.feed.post&rkey={rkey}"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(record["value"]["text"], "hello");
    assert_eq!(record["cid"], created["cid"]);

    let res = client
        .get(format!("{base}/xrpc/com.atproto.sync.listRepos"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let list: Value = res.json().await.unwrap();
    assert_eq!(list["repos"][0]["did"], json!(did));
    assert_eq!(list["repos"][0]["head"], created["commit"]["cid"]);
    assert_eq!(list["repos"][0]["active"], json!(true));
}
