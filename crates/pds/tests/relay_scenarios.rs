//! Our firehose against the relay scenarios of indigo (`tests/vectors/extra/indigo/cmd/relay/
//! testing/testdata/*.json`, see tests/vectors/INDEX.md).
//!
//! The scenario files are relay *inputs*: frames signed by accounts on other hosts, with what a
//! relay must do with each (`drop`, `invalid`, `update`). We cannot emit their frames, but we can
//! perform the same account actions on our server and check that our stream is one a strict
//! relay accepts in full:
//! - each scenario's non-dropped messages become actions on a fresh account: `#identity` first
//!   is the account's creation, a later `#account` a status change (deactivation, takedown,
//!   deletion, reactivation), `#sync` a reactivation (which announces the repository with
//!   `#sync`), and `#commit` the same record writes (same collection, record key and record,
//!   read out of the frame's `blocks`);
//! - while the account is deactivated or taken down, a write is attempted and must be refused;
//! - then every frame of our stream from cursor 0 is checked against the rules: `seq` strictly
//!   increasing; no `#commit` for an account that is not active; `#account` on every status
//!   change, with the right `active`/`status`; per repository, `rev` strictly increasing with
//!   `since` naming the previous commit's `rev` (so nothing is dropped by the relay's rev
//!   ordering), the envelope `rev` equal to the signed commit's, `prevData` on every commit after
//!   the first (strict sync 1.1, which `post_lifecycle_legacy.json`'s frames fail); `#sync`
//!   carrying the current commit; the ops of our commits are the scenario's; and every field
//!   the scenario's frames of a type carry is in ours.

mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use atp_data::{Cid, Value};
use futures::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use harness::{Account, Reply, Server, create_account, post};

const TESTDATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/vectors/extra/indigo/cmd/relay/testing/testdata/"
);
const SCENARIOS: [&str; 4] = [
    "account_lifecycle.json",
    "legacy.json",
    "post_lifecycle_legacy.json",
    "rev_ordering.json",
];
const ADMIN_PASSWORD: &str = "relay-scenarios-admin";

/// One message of a scenario file.
#[derive(Debug, Clone)]
struct Message1 {
    t: String,
    body: Value,
    drop: bool,
    invalid: bool,
}

fn load(file: &str) -> (bool, Vec<Message1>) {
    let path = format!("{TESTDATA}{file}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let json: serde_json::Value = serde_json::from_str(&text).expect("scenario JSON");
    let lenient = json["lenient"].as_bool().expect("lenient");
    let messages = json["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .enumerate()
        .map(|(i, m)| Message1 {
            t: m["frame"]["header"]["t"]
                .as_str()
                .unwrap_or_else(|| panic!("{file} message {i}: header.t"))
                .to_owned(),
            body: atp_data::json::from_json(&m["frame"]["body"])
                .unwrap_or_else(|e| panic!("{file} message {i}: body: {e}")),
            drop: m["drop"].as_bool().unwrap_or(false),
            invalid: m["invalid"].as_bool().unwrap_or(false),
        })
        .collect();
    (lenient, messages)
}

/// The blocks of a frame's CAR, by CID, and its roots.
fn car_blocks(body: &Value) -> (Vec<Cid>, BTreeMap<Cid, Vec<u8>>) {
    let bytes = body
        .get("blocks")
        .and_then(Value::as_bytes)
        .expect("blocks");
    let mut reader = atp_data::car::CarReader::new(bytes).expect("blocks CAR");
    let roots = reader.roots().to_vec();
    let mut blocks = BTreeMap::new();
    while let Some((cid, data)) = reader.next_block().expect("CAR block") {
        blocks.insert(cid, data);
    }
    (roots, blocks)
}

/// The signed commit's `rev` in a frame's blocks (the block named `commit`, or the root).
fn signed_rev(body: &Value) -> String {
    let (roots, blocks) = car_blocks(body);
    let cid = body
        .get("commit")
        .and_then(Value::as_link)
        .copied()
        .unwrap_or_else(|| roots[0]);
    assert_eq!(roots, vec![cid], "the CAR's root is the commit");
    let commit = atp_data::cbor::from_slice(&blocks[&cid]).expect("commit block");
    commit
        .get("rev")
        .and_then(Value::as_str)
        .expect("signed rev")
        .to_owned()
}

fn str_field<'a>(body: &'a Value, key: &str) -> Option<&'a str> {
    body.get(key).and_then(Value::as_str)
}

/// An account status as `#account` frames announce it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Status {
    active: bool,
    status: Option<String>,
}

impl Status {
    fn of(body: &Value) -> Status {
        Status {
            active: body.get("active") == Some(&Value::Bool(true)),
            status: str_field(body, "status").map(str::to_owned),
        }
    }
    fn active() -> Status {
        Status {
            active: true,
            status: None,
        }
    }
    fn inactive(status: &str) -> Status {
        Status {
            active: false,
            status: Some(status.to_owned()),
        }
    }
}

/// One run: a server, an account, and what we did to it.
struct Run {
    file: &'static str,
    server: Server,
    client: reqwest::Client,
    account: Account,
    status: Status,
    /// Every status change we made, in order (creation's `active` first).
    changes: Vec<Status>,
    /// The ops of every commit we made, in order: `(action, path)`.
    commits: Vec<Vec<(String, String)>>,
    /// Writes attempted while the account was not active (all must fail).
    refused_writes: usize,
}

impl Run {
    async fn call(&self, method: &str, body: serde_json::Value) -> Reply {
        post(
            &self.client,
            &self.server.xrpc(method),
            Some(&self.account.access),
            &body,
        )
        .await
    }

    async fn admin(&self, method: &str, body: serde_json::Value) -> Reply {
        let res = self
            .client
            .post(self.server.xrpc(method))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .json(&body)
            .send()
            .await
            .expect("send");
        let status = res.status().as_u16();
        let body = res.json().await.unwrap_or(serde_json::Value::Null);
        Reply { status, body }
    }

    fn ctx(&self, what: &str) -> String {
        format!("{}: {what}", self.file)
    }

    /// A write while the account is not active must be refused and announce nothing.
    async fn write_is_refused(&mut self) {
        let r = self
            .call(
                "com.atproto.repo.createRecord",
                json!({"repo": self.account.did, "collection": "app.bsky.feed.post",
                       "record": {"$type": "app.bsky.feed.post", "text": "nope",
                                  "createdAt": "2025-04-16T21:30:26.717Z"}}),
            )
            .await;
        assert!(
            r.status >= 400,
            "{}",
            self.ctx(&format!(
                "write while {:?} accepted: {}",
                self.status, r.body
            ))
        );
        self.refused_writes += 1;
    }

    async fn set_status(&mut self, to: Status) {
        if to == self.status {
            return;
        }
        let repo_ref = json!({"$type": "com.atproto.admin.defs#repoRef", "did": self.account.did});
        let reply = match (&self.status, &to) {
            (
                _,
                Status {
                    active: false,
                    status,
                },
            ) if status.as_deref() == Some("deleted") => {
                self.admin(
                    "com.atproto.admin.deleteAccount",
                    json!({"did": self.account.did}),
                )
                .await
            }
            (
                _,
                Status {
                    active: false,
                    status,
                },
            ) if status.as_deref() == Some("takendown") => {
                self.admin(
                    "com.atproto.admin.updateSubjectStatus",
                    json!({"subject": repo_ref, "takedown": {"applied": true}}),
                )
                .await
            }
            (_, Status { active: false, .. }) => {
                self.call("com.atproto.server.deactivateAccount", json!({}))
                    .await
            }
            (Status { status, .. }, Status { active: true, .. })
                if status.as_deref() == Some("takendown") =>
            {
                self.admin(
                    "com.atproto.admin.updateSubjectStatus",
                    json!({"subject": repo_ref, "takedown": {"applied": false}}),
                )
                .await
            }
            (_, Status { active: true, .. }) => {
                self.call("com.atproto.server.activateAccount", json!({}))
                    .await
            }
        };
        assert_eq!(
            reply.status,
            200,
            "{}",
            self.ctx(&format!("{:?} -> {to:?}: {}", self.status, reply.body))
        );
        self.status = to.clone();
        self.changes.push(to);
    }

    /// The same writes as a scenario `#commit`, records read out of its blocks.
    async fn replay_commit(&mut self, body: &Value) {
        let (_, blocks) = car_blocks(body);
        let ops = body.get("ops").and_then(Value::as_array).expect("ops");
        let mut writes = Vec::new();
        let mut done = Vec::new();
        for op in ops {
            let action = str_field(op, "action").expect("action");
            let path = str_field(op, "path").expect("path");
            let (collection, rkey) = path.split_once('/').expect("collection/rkey");
            match action {
                "create" | "update" => {
                    let cid = op.get("cid").and_then(Value::as_link).expect("op cid");
                    let record = atp_data::cbor::from_slice(&blocks[cid]).expect("record");
                    writes.push(json!({
                        "$type": format!("com.atproto.repo.applyWrites#{action}"),
                        "collection": collection, "rkey": rkey,
                        "value": atp_data::json::to_json(&record),
                    }));
                }
                "delete" => writes.push(json!({
                    "$type": "com.atproto.repo.applyWrites#delete",
                    "collection": collection, "rkey": rkey,
                })),
                other => panic!("{}", self.ctx(&format!("op action {other}"))),
            }
            done.push((action.to_owned(), path.to_owned()));
        }
        let mut reply = self
            .call(
                "com.atproto.repo.applyWrites",
                json!({"repo": self.account.did, "writes": writes}),
            )
            .await;
        if reply.status == 400 && reply.error() == "InvalidRecord" {
            // Records of 2025 need not pass today's lexicons; the stream rules do not care.
            reply = self
                .call(
                    "com.atproto.repo.applyWrites",
                    json!({"repo": self.account.did, "writes": writes, "validate": false}),
                )
                .await;
        }
        assert_eq!(
            reply.status,
            200,
            "{}",
            self.ctx(&format!("applyWrites {done:?}: {}", reply.body))
        );
        self.commits.push(done);
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A subscription from cursor 0.
async fn subscribe(server: &Server) -> Ws {
    let url = format!(
        "ws://127.0.0.1:{}/xrpc/com.atproto.sync.subscribeRepos?cursor=0",
        server.port
    );
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    ws
}

/// Every frame until the stream is quiet for a second.
async fn read_stream(mut ws: Ws) -> Vec<(Value, Value)> {
    let mut frames = Vec::new();
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(1), ws.next()).await {
        match msg.expect("websocket") {
            Message::Binary(bytes) => {
                let (header, used) = atp_data::cbor::from_slice_prefix(&bytes).expect("header");
                let body = atp_data::cbor::from_slice(&bytes[used..]).expect("body");
                frames.push((header, body));
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    frames
}

/// What a run did, for [`check_stream`].
struct Expect<'a> {
    file: &'a str,
    did: &'a str,
    /// Every status change, in order (creation's `active` first).
    changes: &'a [Status],
    /// The ops of every commit, in order.
    commits: &'a [Vec<(String, String)>],
    /// Writes attempted (and refused) while the account was not active.
    refused_writes: usize,
}

/// Checks our stream against the relay's rules (see the module docs).
fn check_stream(run: &Expect, frames: &[(Value, Value)], theirs: &[Message1], lenient: bool) {
    let did = run.did;
    let ctx = |what: String| format!("{}: {what}", run.file);
    let mut last_seq = i64::MIN;
    let mut status: Option<Status> = None;
    let mut statuses = Vec::new();
    let mut last_rev: Option<String> = None;
    let mut commits = Vec::new();
    let mut syncs = 0;
    let mut fields: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (i, (header, body)) in frames.iter().enumerate() {
        let t = str_field(header, "t").unwrap_or("");
        let at = |what: &str| ctx(format!("frame {i} ({t}): {what}"));
        assert_eq!(header.get("op"), Some(&Value::Integer(1)), "{}", at("op"));
        let seq = body.get("seq").and_then(Value::as_i64).expect("seq");
        assert!(
            seq > last_seq,
            "{}",
            at(&format!("seq {seq} after {last_seq}"))
        );
        last_seq = seq;
        let keys = body.as_map().expect("body map").keys().cloned();
        fields.entry(t.to_owned()).or_default().extend(keys);
        let subject = str_field(body, "repo").or_else(|| str_field(body, "did"));
        assert_eq!(subject, Some(did), "{}", at("about our account"));
        match t {
            "#account" => {
                let now = Status::of(body);
                if now.active {
                    assert!(now.status.is_none(), "{}", at("active with a status"));
                }
                statuses.push(now.clone());
                status = Some(now);
            }
            "#commit" => {
                let active = status.as_ref().is_some_and(|s| s.active);
                assert!(
                    active,
                    "{}",
                    at(&format!("#commit while the account is {status:?}"))
                );
                let rev = str_field(body, "rev").expect("rev").to_owned();
                assert_eq!(signed_rev(body), rev, "{}", at("envelope rev"));
                if let Some(prev) = &last_rev {
                    assert!(rev > *prev, "{}", at(&format!("rev {rev} after {prev}")));
                    assert_eq!(
                        str_field(body, "since"),
                        Some(prev.as_str()),
                        "{}",
                        at("since")
                    );
                    assert!(
                        body.get("prevData").and_then(Value::as_link).is_some(),
                        "{}",
                        at("prevData (strict sync 1.1)")
                    );
                }
                for flag in ["rebase", "tooBig"] {
                    assert_eq!(body.get(flag), Some(&Value::Bool(false)), "{}", at(flag));
                }
                last_rev = Some(rev);
                let ops: Vec<(String, String)> = body
                    .get("ops")
                    .and_then(Value::as_array)
                    .expect("ops")
                    .iter()
                    .map(|op| {
                        (
                            str_field(op, "action").unwrap_or("").to_owned(),
                            str_field(op, "path").unwrap_or("").to_owned(),
                        )
                    })
                    .collect();
                commits.push(ops);
            }
            "#sync" => {
                let rev = str_field(body, "rev").expect("rev").to_owned();
                assert_eq!(signed_rev(body), rev, "{}", at("#sync rev"));
                assert_eq!(
                    car_blocks(body).1.len(),
                    1,
                    "{}",
                    at("#sync CAR: the commit")
                );
                if let Some(prev) = &last_rev {
                    assert!(rev >= *prev, "{}", at("#sync rev goes back"));
                }
                last_rev = Some(rev);
                syncs += 1;
            }
            "#identity" => {
                assert!(
                    status
                        .as_ref()
                        .is_none_or(|s| s.status.as_deref() != Some("deleted")),
                    "{}",
                    at("#identity after deletion")
                );
            }
            other => panic!("{}", at(&format!("unexpected frame type {other}"))),
        }
    }
    // `#account` on every status change, in order, and nothing else.
    assert_eq!(statuses, run.changes, "{}", ctx("#account frames".into()));
    // Our commits carry the scenario's ops (after the account's genesis commit, if announced).
    let ours: Vec<_> = commits
        .iter()
        .filter(|ops| !ops.is_empty())
        .cloned()
        .collect();
    assert_eq!(ours, run.commits, "{}", ctx("commit ops".into()));
    if theirs.iter().any(|m| m.t == "#sync" && !m.drop) {
        assert!(syncs > 0, "{}", ctx("a #sync was expected".into()));
    }
    // Every field of the scenario's (kept) frames of a type is in ours.
    for m in theirs.iter().filter(|m| !m.drop && !m.invalid) {
        let Some(ours) = fields.get(&m.t) else {
            panic!("{}", ctx(format!("no {} frame of ours", m.t)));
        };
        let mut want: BTreeSet<String> = m.body.as_map().expect("map").keys().cloned().collect();
        if lenient {
            // Sync 1.0 frames: their `prevData` absence is what made them lenient.
            want.remove("prevData");
        }
        let missing: Vec<_> = want.difference(ours).collect();
        assert!(
            missing.is_empty(),
            "{}",
            ctx(format!("{} lacks {missing:?}", m.t))
        );
    }
    assert!(
        run.refused_writes > 0 || run.changes.len() == 1,
        "{}",
        ctx("no write was tried while inactive".into())
    );
}

async fn run_scenario(file: &'static str) {
    let (lenient, messages) = load(file);
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[("PDS_ADMIN_PASSWORD", ADMIN_PASSWORD)]).await;
    // Live from the start: a deletion removes the account's earlier events from the log.
    let live = subscribe(&server).await;
    let client = reqwest::Client::new();
    let account = create_account(&client, &server, "scenario").await;
    let mut run = Run {
        file,
        server,
        client,
        account,
        status: Status::active(),
        changes: vec![Status::active()],
        commits: Vec::new(),
        refused_writes: 0,
    };
    let mut created = false;
    for (i, m) in messages.iter().enumerate() {
        if m.drop || m.invalid {
            // A frame a relay must drop: nothing of ours corresponds to it.
            continue;
        }
        match m.t.as_str() {
            // The account's first announcement is its creation (done above).
            "#identity" if !created => {}
            "#identity" => {
                let handle = format!("renamed{i}.test");
                let r = run
                    .call(
                        "com.atproto.identity.updateHandle",
                        json!({"handle": handle}),
                    )
                    .await;
                assert_eq!(
                    r.status,
                    200,
                    "{}",
                    run.ctx(&format!("updateHandle: {}", r.body))
                );
            }
            "#account" => {
                let to = Status::of(&m.body);
                if !to.active {
                    // Leave through a deactivation first, and try to write meanwhile.
                    if to.status.as_deref() == Some("deleted") && run.status.active {
                        run.set_status(Status::inactive("deactivated")).await;
                        run.write_is_refused().await;
                        run.set_status(Status::active()).await;
                        run.set_status(Status::inactive("takendown")).await;
                        run.write_is_refused().await;
                        run.set_status(Status::active()).await;
                    }
                }
                run.set_status(to).await;
                if !run.status.active && run.status.status.as_deref() != Some("deleted") {
                    run.write_is_refused().await;
                }
            }
            // A repository announced whole: what reactivation does.
            "#sync" => {
                run.set_status(Status::inactive("deactivated")).await;
                run.write_is_refused().await;
                run.set_status(Status::active()).await;
            }
            "#commit" => {
                if !run.status.active {
                    run.set_status(Status::active()).await;
                }
                run.replay_commit(&m.body).await;
            }
            other => panic!("{file}: message {i}: unknown type {other}"),
        }
        created = true;
    }
    // Scenarios that never leave the active state still get one round trip, so that the
    // "no #commit while inactive" rule is exercised everywhere.
    if run.status.active && run.refused_writes == 0 {
        run.set_status(Status::inactive("deactivated")).await;
        run.write_is_refused().await;
        run.set_status(Status::active()).await;
    }
    let frames = read_stream(live).await;
    assert!(!frames.is_empty(), "{file}: no frames");
    // Replaying gives the same frames, except that a deleted account leaves only its deletion.
    let replayed = read_stream(subscribe(&run.server).await).await;
    if run.status.status.as_deref() == Some("deleted") {
        assert_eq!(replayed.len(), 1, "{file}: replay after deletion");
        assert_eq!(
            Some(&replayed[0]),
            frames.last(),
            "{file}: replay after deletion"
        );
    } else {
        assert_eq!(replayed, frames, "{file}: replay");
    }
    let expect = Expect {
        file,
        did: &run.account.did,
        changes: &run.changes,
        commits: &run.commits,
        refused_writes: run.refused_writes,
    };
    check_stream(&expect, &frames, &messages, lenient);
}

#[tokio::test(flavor = "multi_thread")]
async fn account_lifecycle() {
    run_scenario(SCENARIOS[0]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn legacy() {
    run_scenario(SCENARIOS[1]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn post_lifecycle_legacy() {
    run_scenario(SCENARIOS[2]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rev_ordering() {
    run_scenario(SCENARIOS[3]).await;
}

/// The checker is not vacuous: streams that break each rule are refused.
#[test]
fn the_checker_catches_broken_streams() {
    let file = SCENARIOS[3];
    let (lenient, messages) = load(file);
    let did = "did:plc:44ybard66vv44zksje25o7dz";
    let frame = |t: &str, body: Value| {
        (
            Value::Map(BTreeMap::from([
                ("op".to_owned(), Value::Integer(1)),
                ("t".to_owned(), Value::from(t)),
            ])),
            body,
        )
    };
    let account = |active: bool, status: Option<&str>| {
        let mut m = BTreeMap::from([
            ("did".to_owned(), Value::from(did)),
            ("seq".to_owned(), Value::Integer(0)),
            ("active".to_owned(), Value::Bool(active)),
            ("time".to_owned(), Value::from("2025-04-16T21:30:26.717Z")),
        ]);
        if let Some(s) = status {
            m.insert("status".to_owned(), Value::from(s));
        }
        frame("#account", Value::Map(m))
    };
    // The scenario's two kept commits, with a deactivation between them.
    let kept: Vec<&Message1> = messages.iter().filter(|m| !m.drop).collect();
    let good = vec![
        account(true, None),
        frame("#commit", kept[0].body.clone()),
        account(false, Some("deactivated")),
        account(true, None),
        frame("#commit", kept[1].body.clone()),
    ];
    let ops = |m: &Message1| -> Vec<(String, String)> {
        m.body
            .get("ops")
            .and_then(Value::as_array)
            .unwrap()
            .iter()
            .map(|op| {
                (
                    str_field(op, "action").unwrap().to_owned(),
                    str_field(op, "path").unwrap().to_owned(),
                )
            })
            .collect()
    };
    let commits = vec![ops(kept[0]), ops(kept[1])];
    let changes = vec![
        Status::active(),
        Status::inactive("deactivated"),
        Status::active(),
    ];
    // Sequence numbers in frame order, unless `keep_seqs`.
    let passes = |mut frames: Vec<(Value, Value)>, keep_seqs: bool| {
        if !keep_seqs {
            for (i, (_, body)) in frames.iter_mut().enumerate() {
                if let Value::Map(m) = body {
                    m.insert("seq".to_owned(), Value::Integer(i as i64 + 1));
                }
            }
        }
        let expect = Expect {
            file,
            did,
            changes: &changes,
            commits: &commits,
            refused_writes: 1,
        };
        std::panic::catch_unwind(|| check_stream(&expect, &frames, &messages, lenient)).is_ok()
    };
    assert!(passes(good.clone(), false), "the good stream passes");
    // seq going back.
    let mut bad = good.clone();
    for (i, (_, body)) in bad.iter_mut().enumerate() {
        if let Value::Map(m) = body {
            m.insert("seq".to_owned(), Value::Integer(10 - i as i64));
        }
    }
    assert!(!passes(bad, true), "seq going back");
    // A commit while deactivated.
    let mut bad = good.clone();
    bad.swap(3, 4);
    assert!(!passes(bad, false), "commit while deactivated");
    // A status change without #account.
    let mut bad = good.clone();
    bad.remove(3);
    bad.remove(2);
    assert!(!passes(bad, false), "status changes not announced");
    // The scenario's dropped frames (stale revs) in place of the good one.
    for stale in messages.iter().filter(|m| m.drop) {
        let mut bad = good.clone();
        bad[4] = frame("#commit", stale.body.clone());
        assert!(!passes(bad, false), "stale rev");
    }
    // A commit without prevData after the first.
    let mut bad = good.clone();
    if let (_, Value::Map(m)) = &mut bad[4] {
        m.remove("prevData");
    }
    assert!(!passes(bad, false), "no prevData");
    // A field of the scenario's frames missing from ours.
    let mut bad = good;
    for (_, body) in &mut bad {
        if let Value::Map(m) = body {
            m.remove("blobs");
        }
    }
    assert!(!passes(bad, false), "missing field");
}
