//! Acknowledged writes survive a crash: eight concurrent writers create records against the real
//! `pds serve` binary, the server is SIGKILLed mid-stream, restarted on the same data directory,
//! and every record whose createRecord returned 200 must be readable with the acknowledged CID.
//! Each acknowledged write must also have its `#commit` event in the event log
//! (`<data>/pds.sqlite`, table `event`), naming the record's path and CID.

mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atp_data::Value;
use serde_json::json;

use harness::{Server, create_account, get};

const WRITERS: usize = 8;
const COLLECTION: &str = "app.bsky.feed.post";

/// An acknowledged write: the record's path (`collection/rkey`) and CID.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Acked {
    path: String,
    cid: String,
}

/// Creates records until a request fails (the server is gone); records every 200.
async fn writer(
    client: reqwest::Client,
    url: String,
    did: String,
    token: String,
    id: usize,
    acked: Arc<Mutex<Vec<Acked>>>,
) {
    for n in 0.. {
        let body = json!({"repo": did, "collection": COLLECTION, "record": {
            "$type": COLLECTION, "text": format!("writer {id} post {n}"),
            "createdAt": "2024-01-01T00:00:00.000Z"}});
        let Ok(res) = client
            .post(&url)
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
        else {
            return;
        };
        if res.status() != 200 {
            return;
        }
        let Ok(out) = res.json::<serde_json::Value>().await else {
            return;
        };
        let uri = out["uri"].as_str().expect("uri");
        let prefix = format!("at://{did}/");
        let path = uri
            .strip_prefix(&prefix)
            .expect("uri in the repo")
            .to_owned();
        let cid = out["cid"].as_str().expect("cid").to_owned();
        acked.lock().unwrap().push(Acked { path, cid });
    }
}

/// Every (path, cid) created by a `#commit` event of `did` in the event log.
fn logged_creates(db: &std::path::Path, did: &str) -> BTreeSet<Acked> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open pds.sqlite read-only");
    let mut stmt = conn
        .prepare("SELECT seq, body FROM event WHERE did = ?1 AND kind = 'commit' ORDER BY seq")
        .expect("prepare");
    let rows = stmt
        .query_map([did], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
        })
        .expect("query");
    let mut out = BTreeSet::new();
    for row in rows {
        let (seq, body) = row.expect("row");
        let event = atp_data::cbor::from_slice(&body)
            .unwrap_or_else(|e| panic!("event {seq}: body is not DAG-CBOR: {e}"));
        let Value::Map(event) = event else {
            panic!("event {seq}: body is not a map")
        };
        assert_eq!(
            event.get("repo"),
            Some(&Value::String(did.to_owned())),
            "event {seq}: repo"
        );
        let Some(Value::Array(ops)) = event.get("ops") else {
            panic!("event {seq}: no ops array")
        };
        for op in ops {
            let Value::Map(op) = op else {
                panic!("event {seq}: op is not a map")
            };
            if op.get("action") != Some(&Value::String("create".to_owned())) {
                continue;
            }
            let (Some(Value::String(path)), Some(Value::Link(cid))) =
                (op.get("path"), op.get("cid"))
            else {
                panic!("event {seq}: create op without path or cid: {op:?}")
            };
            out.insert(Acked {
                path: path.clone(),
                cid: cid.to_string(),
            });
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path(), &[]).await;
    let client = reqwest::Client::new();
    let alice = create_account(&client, &server, "alice").await;

    let acked = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..WRITERS)
        .map(|id| {
            tokio::spawn(writer(
                client.clone(),
                server.xrpc("com.atproto.repo.createRecord"),
                alice.did.clone(),
                alice.access.clone(),
                id,
                acked.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill();
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(10), t)
            .await
            .expect("writers stop once the server is gone")
            .expect("writer task");
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(
        acked.len() >= WRITERS,
        "too few acknowledged writes before the kill to test anything: {}",
        acked.len()
    );
    let unique: BTreeSet<_> = acked.iter().map(|a| a.path.clone()).collect();
    assert_eq!(
        unique.len(),
        acked.len(),
        "two acknowledged writes share a path"
    );

    server.restart().await;
    let mut missing = Vec::new();
    for a in &acked {
        let rkey = a.path.rsplit('/').next().unwrap();
        let reply = get(
            &client,
            &server.xrpc("com.atproto.repo.getRecord"),
            &[
                ("repo", &alice.did),
                ("collection", COLLECTION),
                ("rkey", rkey),
            ],
        )
        .await;
        if reply.status != 200 || reply.body["cid"] != a.cid.as_str() {
            missing.push(format!(
                "{} {}: got {} {}",
                a.path, a.cid, reply.status, reply.body
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged records lost or changed after SIGKILL:\n{}",
        missing.len(),
        acked.len(),
        missing.join("\n")
    );
    // The restarted server still takes writes.
    let res = harness::post(
        &client,
        &server.xrpc("com.atproto.repo.createRecord"),
        Some(&alice.access),
        &json!({"repo": alice.did, "collection": COLLECTION, "record": {
            "$type": COLLECTION, "text": "after restart", "createdAt": "2024-01-01T00:00:00.000Z"}}),
    )
    .await;
    res.ok("createRecord after restart");
    server.kill();

    let logged = logged_creates(&data.path().join("pds.sqlite"), &alice.did);
    let by_path: BTreeMap<_, _> = logged.iter().map(|a| (&a.path, &a.cid)).collect();
    let unlogged: Vec<_> = acked
        .iter()
        .filter(|a| by_path.get(&a.path) != Some(&&a.cid))
        .map(|a| format!("{} {} (logged: {:?})", a.path, a.cid, by_path.get(&a.path)))
        .collect();
    assert!(
        unlogged.is_empty(),
        "{} of {} acknowledged writes have no matching #commit event:\n{}",
        unlogged.len(),
        acked.len(),
        unlogged.join("\n")
    );
    println!(
        "{} acknowledged writes before SIGKILL, all durable; {} create ops in the event log",
        acked.len(),
        logged.len()
    );
}
