//! A failed write changes nothing: against the real `pds serve` binary, each kind of refused
//! write (stale swapCommit/swapRecord, an oversized blob, missing or wrong auth, a record that is
//! not valid atproto data, a write to another account's repo, a batch with one bad write) leaves
//! the repo head (`sync.getLatestCommit` cid and rev), every `listRecords` page, `describeRepo`'s
//! collections and the blob directory's files (names and bytes) exactly as before.

mod harness;

use serde_json::{Value, json};

use harness::{Account, Reply, Server, create_account, files_under, get, post, post_bytes};

/// Small, so an oversized upload is cheap.
const BLOB_LIMIT: usize = 1000;
const COLLECTIONS: [&str; 2] = ["app.bsky.feed.post", "com.example.thing"];

/// What a failed write must leave alone.
#[derive(Debug, PartialEq)]
struct Snapshot {
    heads: Vec<Value>,
    listings: Vec<Value>,
    collections: Value,
    /// Blob files: path and bytes.
    blobs: Vec<(std::path::PathBuf, Vec<u8>)>,
}

struct Fixture {
    server: Server,
    client: reqwest::Client,
    alice: Account,
    bob: Account,
}

impl Fixture {
    async fn snapshot(&self) -> Snapshot {
        let mut heads = Vec::new();
        for did in [&self.alice.did, &self.bob.did] {
            let head = get(
                &self.client,
                &self.server.xrpc("com.atproto.sync.getLatestCommit"),
                &[("did", did)],
            )
            .await
            .ok("getLatestCommit");
            heads.push(head);
        }
        let mut listings = Vec::new();
        for collection in COLLECTIONS {
            let page = get(
                &self.client,
                &self.server.xrpc("com.atproto.repo.listRecords"),
                &[
                    ("repo", &self.alice.did),
                    ("collection", collection),
                    ("limit", "100"),
                ],
            )
            .await
            .ok("listRecords");
            listings.push(page);
        }
        let described = get(
            &self.client,
            &self.server.xrpc("com.atproto.repo.describeRepo"),
            &[("repo", &self.alice.did)],
        )
        .await
        .ok("describeRepo");
        Snapshot {
            heads,
            listings,
            collections: described["collections"].clone(),
            blobs: files_under(&self.server.data_dir.join("blobs")),
        }
    }

    async fn call(&self, method: &str, token: Option<&str>, body: Value) -> Reply {
        post(&self.client, &self.server.xrpc(method), token, &body).await
    }

    async fn upload(&self, token: Option<&str>, bytes: Vec<u8>) -> Reply {
        let url = self.server.xrpc("com.atproto.repo.uploadBlob");
        post_bytes(&self.client, &url, token, "image/png", bytes).await
    }

    /// Checks a refused write: its status and error name, and that the state is `before`.
    async fn check(&self, case: Case, before: &mut Snapshot, failures: &mut Vec<String>) {
        let status_ok = case.statuses.contains(&case.reply.status);
        let error_ok = case.error.is_none_or(|e| case.reply.error() == e);
        if !status_ok || !error_ok {
            failures.push(format!(
                "{}: expected status {:?} error {:?}, got {} {}",
                case.name, case.statuses, case.error, case.reply.status, case.reply.body
            ));
        }
        let after = self.snapshot().await;
        let names = |s: &Snapshot| {
            s.blobs
                .iter()
                .map(|(p, b)| format!("{} ({} bytes)", p.display(), b.len()))
                .collect::<Vec<_>>()
        };
        let before_names = names(before);
        for (what, changed) in [
            ("repo heads", after.heads != before.heads),
            ("listRecords", after.listings != before.listings),
            (
                "describeRepo collections",
                after.collections != before.collections,
            ),
            ("blob files", after.blobs != before.blobs),
        ] {
            if changed {
                failures.push(format!(
                    "{}: {what} changed (status {} {});\nbefore heads {:?} blobs {:?}\nafter heads {:?} blobs {:?}",
                    case.name,
                    case.reply.status,
                    case.reply.body,
                    before.heads,
                    before_names,
                    after.heads,
                    names(&after)
                ));
            }
        }
        // Later cases compare with the changed state, so only the guilty write is reported.
        *before = after;
    }
}

fn post_record(text: &str) -> Value {
    json!({"$type": "app.bsky.feed.post", "text": text, "createdAt": "2024-01-01T00:00:00.000Z"})
}

/// A refused write: its status, error name, and the unchanged state.
struct Case {
    name: &'static str,
    reply: Reply,
    /// Acceptable statuses.
    statuses: &'static [u16],
    /// The expected XRPC error name, if pinned.
    error: Option<&'static str>,
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_writes_change_nothing() {
    let data = tempfile::tempdir().unwrap();
    let limit = BLOB_LIMIT.to_string();
    let server = Server::start(data.path(), &[("PDS_BLOB_UPLOAD_LIMIT", &limit)]).await;
    let client = reqwest::Client::new();
    let alice = create_account(&client, &server, "alice").await;
    let bob = create_account(&client, &server, "bob").await;
    let fx = Fixture {
        server,
        client,
        alice,
        bob,
    };
    let a = Some(fx.alice.access.as_str());
    let alice_did = fx.alice.did.clone();

    // Some state to protect: records in two collections, a referenced (permanent) blob and an
    // unreferenced (temporary) one.
    let kept = fx.upload(a, vec![1u8; 100]).await.ok("uploadBlob")["blob"].clone();
    let temp = fx.upload(a, vec![2u8; 200]).await.ok("uploadBlob")["blob"].clone();
    let first = fx
        .call(
            "com.atproto.repo.createRecord",
            a,
            json!({"repo": alice_did, "collection": "app.bsky.feed.post", "rkey": "first",
                   "record": {"$type": "app.bsky.feed.post", "text": "with image",
                              "createdAt": "2024-01-01T00:00:00.000Z",
                              "embed": {"$type": "app.bsky.embed.images",
                                        "images": [{"alt": "", "image": kept}]}}}),
        )
        .await
        .ok("createRecord first");
    let stale_commit = first["commit"]["cid"].as_str().unwrap().to_owned();
    let second = fx
        .call(
            "com.atproto.repo.createRecord",
            a,
            json!({"repo": alice_did, "collection": "com.example.thing", "rkey": "thing",
                   "record": {"$type": "com.example.thing", "n": 1}}),
        )
        .await
        .ok("createRecord second");
    let stale_record = second["cid"].as_str().unwrap().to_owned();
    fx.call(
        "com.atproto.repo.putRecord",
        a,
        json!({"repo": alice_did, "collection": "com.example.thing", "rkey": "thing",
               "record": {"$type": "com.example.thing", "n": 2}}),
    )
    .await
    .ok("putRecord");

    let mut before = fx.snapshot().await;
    assert_eq!(before.listings[0]["records"].as_array().unwrap().len(), 1);
    assert_eq!(before.listings[1]["records"].as_array().unwrap().len(), 1);
    assert!(
        before.blobs.iter().any(|(p, _)| p.starts_with("tmp")),
        "expected a temporary blob file: {:?}",
        before.blobs.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    assert!(
        before.blobs.iter().any(|(p, _)| !p.starts_with("tmp")),
        "expected a permanent blob file"
    );

    let new_post = |rkey: &str| {
        json!({"repo": alice_did, "collection": "app.bsky.feed.post", "rkey": rkey,
               "record": post_record("should not exist")})
    };
    // A record that references the temporary blob: a failed write must not promote it.
    let with_temp_blob = json!({"$type": "app.bsky.feed.post", "text": "x",
        "createdAt": "2024-01-01T00:00:00.000Z",
        "embed": {"$type": "app.bsky.embed.images", "images": [{"alt": "", "image": temp}]}});
    let mut with_temp_swap_commit = new_post("swapc");
    with_temp_swap_commit["record"] = with_temp_blob.clone();
    with_temp_swap_commit["swapCommit"] = json!(stale_commit);

    let mut failures = Vec::new();
    // Runs one refused write, then checks it changed nothing.
    macro_rules! case {
        ($name:expr, $reply:expr, $statuses:expr, $error:expr $(,)?) => {{
            let reply = $reply;
            let case = Case {
                name: $name,
                reply,
                statuses: $statuses,
                error: $error,
            };
            fx.check(case, &mut before, &mut failures).await;
        }};
    }
    const BAD_REQUEST: &[u16] = &[400];
    const UNAUTHORIZED: &[u16] = &[400, 401, 403];

    case!(
        "createRecord with a stale swapCommit (record references the temporary blob)",
        fx.call("com.atproto.repo.createRecord", a, with_temp_swap_commit,)
            .await,
        BAD_REQUEST,
        Some("InvalidSwap"),
    );
    case!(
        "putRecord with a stale swapRecord (record references the temporary blob)",
        fx.call(
            "com.atproto.repo.putRecord",
            a,
            json!({"repo": alice_did, "collection": "app.bsky.feed.post", "rkey": "first",
                   "record": with_temp_blob, "swapRecord": stale_record}),
        )
        .await,
        BAD_REQUEST,
        Some("InvalidSwap"),
    );
    case!(
        "deleteRecord with a stale swapRecord",
        fx.call(
            "com.atproto.repo.deleteRecord",
            a,
            json!({"repo": alice_did, "collection": "com.example.thing", "rkey": "thing",
                   "swapRecord": stale_record}),
        )
        .await,
        BAD_REQUEST,
        Some("InvalidSwap"),
    );
    case!(
        "deleteRecord with a stale swapCommit",
        fx.call(
            "com.atproto.repo.deleteRecord",
            a,
            json!({"repo": alice_did, "collection": "app.bsky.feed.post", "rkey": "first",
                   "swapCommit": stale_commit}),
        )
        .await,
        BAD_REQUEST,
        Some("InvalidSwap"),
    );
    case!(
        "applyWrites with a stale swapCommit",
        fx.call(
            "com.atproto.repo.applyWrites",
            a,
            json!({"repo": alice_did, "swapCommit": stale_commit, "writes": [
                {"$type": "com.atproto.repo.applyWrites#create", "collection": "app.bsky.feed.post",
                 "rkey": "batch", "value": post_record("x")}]}),
        )
        .await,
        BAD_REQUEST,
        Some("InvalidSwap"),
    );
    case!(
        "uploadBlob beyond PDS_BLOB_UPLOAD_LIMIT",
        fx.upload(a, vec![3u8; BLOB_LIMIT * 4]).await,
        &[400, 413],
        None,
    );
    case!(
        "createRecord without auth",
        fx.call("com.atproto.repo.createRecord", None, new_post("noauth"))
            .await,
        &[401],
        None,
    );
    case!(
        "createRecord with a garbage token",
        fx.call(
            "com.atproto.repo.createRecord",
            Some("not-a-jwt"),
            new_post("garbage"),
        )
        .await,
        UNAUTHORIZED,
        None,
    );
    case!(
        "uploadBlob without auth",
        fx.upload(None, vec![4u8; 10]).await,
        &[401],
        None,
    );
    case!(
        "createRecord with a float",
        fx.call(
            "com.atproto.repo.createRecord",
            a,
            json!({"repo": alice_did, "collection": "com.example.thing", "rkey": "float",
                   "record": {"$type": "com.example.thing", "n": 1.5}}),
        )
        .await,
        BAD_REQUEST,
        None,
    );
    case!(
        "createRecord with $bytes that is not base64",
        fx.call(
            "com.atproto.repo.createRecord",
            a,
            json!({"repo": alice_did, "collection": "com.example.thing", "rkey": "bytes",
                   "record": {"$type": "com.example.thing", "b": {"$bytes": "not base64!"}}}),
        )
        .await,
        BAD_REQUEST,
        None,
    );
    case!(
        "createRecord with a $link that is not a CID",
        fx.call(
            "com.atproto.repo.createRecord",
            a,
            json!({"repo": alice_did, "collection": "com.example.thing", "rkey": "link",
                   "record": {"$type": "com.example.thing", "l": {"$link": "bafyNOTACID"}}}),
        )
        .await,
        BAD_REQUEST,
        None,
    );
    case!(
        "applyWrites with a valid write and then a float (atomic)",
        fx.call(
            "com.atproto.repo.applyWrites",
            a,
            json!({"repo": alice_did, "writes": [
                {"$type": "com.atproto.repo.applyWrites#create", "collection": "app.bsky.feed.post",
                 "rkey": "batchok", "value": with_temp_blob},
                {"$type": "com.atproto.repo.applyWrites#delete", "collection": "com.example.thing",
                 "rkey": "thing"},
                {"$type": "com.atproto.repo.applyWrites#create", "collection": "com.example.thing",
                 "rkey": "batchbad", "value": {"$type": "com.example.thing", "n": 0.5}}]}),
        )
        .await,
        BAD_REQUEST,
        None,
    );
    case!(
        "createRecord into another account's repo",
        fx.call(
            "com.atproto.repo.createRecord",
            Some(&fx.bob.access),
            new_post("bob-in-alice"),
        )
        .await,
        UNAUTHORIZED,
        None,
    );
    case!(
        "deleteRecord in another account's repo",
        fx.call(
            "com.atproto.repo.deleteRecord",
            Some(&fx.bob.access),
            json!({"repo": alice_did, "collection": "app.bsky.feed.post", "rkey": "first"}),
        )
        .await,
        UNAUTHORIZED,
        None,
    );
    case!(
        "applyWrites on bob's repo with alice's token",
        fx.call(
            "com.atproto.repo.applyWrites",
            a,
            json!({"repo": fx.bob.did, "writes": [
                {"$type": "com.atproto.repo.applyWrites#create", "collection": "app.bsky.feed.post",
                 "rkey": "x", "value": post_record("x")}]}),
        )
        .await,
        UNAUTHORIZED,
        None,
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The repo is still writable: a good write advances the head.
    let ok = fx
        .call("com.atproto.repo.createRecord", a, new_post("after"))
        .await
        .ok("createRecord after the failures");
    assert_ne!(
        ok["commit"]["cid"], before.heads[0]["cid"],
        "a good write must advance the head"
    );
}

/// `putRecord` with `"swapRecord": null` means "only if the record does not exist yet" (the
/// reference's transactor: an update whose swapCid is null is a BadRecordSwap), so over an
/// existing record it must fail with InvalidSwap and change nothing.
#[tokio::test(flavor = "multi_thread")]
async fn put_record_with_null_swap_record_over_existing_record_fails() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]).await;
    let client = reqwest::Client::new();
    let alice = create_account(&client, &server, "alice").await;
    let put = |n: i64, swap: Option<Value>| {
        let mut body = json!({"repo": alice.did, "collection": "com.example.thing", "rkey": "thing",
                              "record": {"$type": "com.example.thing", "n": n}});
        if let Some(swap) = swap {
            body["swapRecord"] = swap;
        }
        body
    };
    let url = server.xrpc("com.atproto.repo.putRecord");
    // Null on a missing record: a create, allowed.
    post(
        &client,
        &url,
        Some(&alice.access),
        &put(1, Some(Value::Null)),
    )
    .await
    .ok("putRecord create with swapRecord null");
    let head = |client: reqwest::Client| {
        let url = server.xrpc("com.atproto.sync.getLatestCommit");
        let did = alice.did.clone();
        async move {
            get(&client, &url, &[("did", &did)])
                .await
                .ok("getLatestCommit")
        }
    };
    let before = head(client.clone()).await;
    let reply = post(
        &client,
        &url,
        Some(&alice.access),
        &put(2, Some(Value::Null)),
    )
    .await;
    assert_eq!(
        (reply.status, reply.error()),
        (400, "InvalidSwap"),
        "{}",
        reply.body
    );
    assert_eq!(head(client.clone()).await, before);
}
