//! End to end: start the real `pds serve` binary (embedded PLC directory on its own port, data
//! in a temp dir), create an account and a record over HTTP, and read them back, including the
//! DID document from the PLC directory.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Kills the server when the test ends, pass or fail.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_healthy(client: &reqwest::Client, base: &str, server: &mut Server) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(res) = client.get(format!("{base}/xrpc/_health")).send().await
            && res.status().is_success()
        {
            return;
        }
        if let Some(status) = server.0.try_wait().unwrap() {
            panic!("pds serve exited early: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "pds serve did not become healthy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn post(client: &reqwest::Client, url: String, token: Option<&str>, body: Value) -> Value {
    let mut req = client.post(&url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert!(status.is_success(), "{url}: {status} {body}");
    body
}

#[tokio::test]
async fn serve_create_account_and_record() {
    let data = tempfile::tempdir().unwrap();
    let (port, plc_port) = (free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_pds"))
        .arg("serve")
        .env("PDS_PORT", port.to_string())
        .env("PDS_PLC_EMBEDDED_PORT", plc_port.to_string())
        .env("PDS_DATA_DIRECTORY", data.path())
        .env("PDS_HOSTNAME", "localhost")
        .env("PDS_DEV_MODE", "true")
        .env("LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut server = Server(child);
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&client, &base, &mut server).await;

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
    assert_eq!(res.status().as_u16(), 501);
}
