//! `com.atproto.sync.subscribeRepos` against the real `pds serve` binary with a websocket
//! client: live `#commit` frames in order with verifiable signatures, record proofs and
//! `prevData` inversion; cursor replay (from 0 and from the middle) without gap or duplicate;
//! `FutureCursor`; no loss or repeat across a restart; sequence numbers that never go back even
//! after the event log is wiped.

mod harness;

use std::time::Duration;

use atp_data::{Cid, Value};
use atp_repo::write::{RecordOp, WriteAction};
use atp_repo::{BlockMap, SignedCommit, verify_prev_data, verify_record_proof};
use futures::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use harness::{Account, Server};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One decoded frame.
#[derive(Debug, Clone)]
struct Frame {
    header: Value,
    body: Value,
    bytes: Vec<u8>,
}

impl Frame {
    fn t(&self) -> &str {
        self.header.get("t").and_then(Value::as_str).unwrap_or("")
    }
    fn op(&self) -> i64 {
        self.header.get("op").and_then(Value::as_i64).expect("op")
    }
    fn seq(&self) -> i64 {
        self.body.get("seq").and_then(Value::as_i64).expect("seq")
    }
}

async fn connect(server: &Server, cursor: Option<i64>) -> Ws {
    let mut url = format!(
        "ws://127.0.0.1:{}/xrpc/com.atproto.sync.subscribeRepos",
        server.port
    );
    if let Some(c) = cursor {
        url.push_str(&format!("?cursor={c}"));
    }
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    ws
}

fn decode(bytes: &[u8]) -> Frame {
    let (header, used) = atp_data::cbor::from_slice_prefix(bytes).expect("frame header");
    let body = atp_data::cbor::from_slice(&bytes[used..]).expect("frame body");
    Frame {
        header,
        body,
        bytes: bytes.to_vec(),
    }
}

/// The next frame, `None` if the server closed the stream; panics after 10 s of silence.
async fn next(ws: &mut Ws) -> Option<Frame> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("no frame within 10 s");
        match msg {
            None | Some(Ok(Message::Close(_))) => return None,
            Some(Ok(Message::Binary(b))) => return Some(decode(&b)),
            Some(Ok(Message::Text(t))) => panic!("text frame: {t}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("websocket error: {e}"),
        }
    }
}

/// Asserts nothing arrives for a short while.
async fn assert_quiet(ws: &mut Ws) {
    if let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(500), ws.next()).await {
        panic!("unexpected message: {msg:?}");
    }
}

/// Frames until (and including) the one with sequence number `last`.
async fn frames_through(ws: &mut Ws, last: i64) -> Vec<Frame> {
    let mut out = Vec::new();
    loop {
        let frame = next(ws).await.expect("stream closed early");
        assert_eq!(frame.op(), 1, "error frame: {:?}", frame.body);
        let seq = frame.seq();
        out.push(frame);
        if seq >= last {
            return out;
        }
    }
}

async fn signing_key(server: &Server, did: &str) -> atp_crypto::PublicKey {
    let doc: serde_json::Value =
        reqwest::get(format!("http://127.0.0.1:{}/{did}", server.plc_port))
            .await
            .expect("plc")
            .json()
            .await
            .expect("plc json");
    let multibase = doc["verificationMethod"][0]["publicKeyMultibase"]
        .as_str()
        .expect("publicKeyMultibase");
    atp_crypto::PublicKey::from_multikey(multibase).expect("multikey")
}

fn link(v: Option<&Value>) -> Option<Cid> {
    v.and_then(Value::as_link).copied()
}

/// Checks a `#commit` frame: signature, every op's record proof, and `prevData` by inversion.
fn check_commit(frame: &Frame, did: &str, key: &atp_crypto::PublicKey) {
    let body = &frame.body;
    let ctx = format!("#commit seq {}", frame.seq());
    assert_eq!(frame.t(), "#commit", "{ctx}");
    assert_eq!(body.get("repo").and_then(Value::as_str), Some(did), "{ctx}");
    let time = body.get("time").and_then(Value::as_str).expect("time");
    assert!(
        time.len() == 24
            && time.ends_with('Z')
            && chrono::DateTime::parse_from_rfc3339(time).is_ok(),
        "{ctx}: time {time}"
    );
    let car = body
        .get("blocks")
        .and_then(Value::as_bytes)
        .expect("blocks");
    let mut reader = atp_data::car::CarReader::new(car).expect("car");
    let commit_cid = link(body.get("commit")).expect("commit");
    assert_eq!(reader.roots(), &[commit_cid], "{ctx}: CAR root");
    let mut blocks = BlockMap::new();
    while let Some((cid, bytes)) = reader.next_block().expect("car block") {
        blocks.insert(cid, bytes);
    }
    let commit = SignedCommit::from_cbor(blocks.get(&commit_cid).expect("commit block"))
        .expect("commit decodes");
    commit.verify(key).expect("commit signature");
    assert_eq!(commit.did().as_str(), did, "{ctx}");
    assert_eq!(
        commit.rev().map(|r| r.as_str().to_owned()),
        body.get("rev").and_then(Value::as_str).map(str::to_owned),
        "{ctx}: rev"
    );
    let mut ops = Vec::new();
    for op in body.get("ops").and_then(Value::as_array).expect("ops") {
        let path = op.get("path").and_then(Value::as_str).expect("path");
        let cid = link(op.get("cid"));
        let action = match op.get("action").and_then(Value::as_str) {
            Some("create") => WriteAction::Create,
            Some("update") => WriteAction::Update,
            Some("delete") => WriteAction::Delete,
            other => panic!("{ctx}: action {other:?}"),
        };
        let proven = verify_record_proof(commit.data(), path, &blocks).expect("record proof");
        assert_eq!(proven, cid, "{ctx}: proof of {path}");
        if let Some(cid) = cid {
            assert!(blocks.contains_key(&cid), "{ctx}: record block {path}");
        }
        ops.push(RecordOp {
            action,
            path: path.to_owned(),
            cid,
            prev: link(op.get("prev")),
        });
    }
    let prev_data = link(body.get("prevData")).expect("prevData (sync v1.1)");
    verify_prev_data(commit.data(), &ops, &blocks, &prev_data).expect("prevData inversion");
}

async fn xrpc(server: &Server, account: &Account, method: &str, body: serde_json::Value) {
    let client = reqwest::Client::new();
    harness::post(&client, &server.xrpc(method), Some(&account.access), &body)
        .await
        .ok(method);
}

fn post(text: &str) -> serde_json::Value {
    json!({"$type": "app.bsky.feed.post", "text": text, "createdAt": "2024-01-01T00:00:00.000Z"})
}

async fn create(server: &Server, account: &Account, rkey: &str) {
    xrpc(
        server,
        account,
        "com.atproto.repo.createRecord",
        json!({"repo": account.did, "collection": "app.bsky.feed.post", "rkey": rkey, "record": post(rkey)}),
    )
    .await;
}

/// The current head sequence number: the last frame of a replay from 0.
async fn head(server: &Server) -> i64 {
    let mut ws = connect(server, Some(0)).await;
    let mut last = 0;
    while let Ok(Some(Ok(Message::Binary(b)))) =
        tokio::time::timeout(Duration::from_millis(500), ws.next()).await
    {
        last = decode(&b).seq();
    }
    last
}

#[tokio::test]
async fn live_replay_and_future_cursor() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]).await;
    let client = reqwest::Client::new();
    let alice = harness::create_account(&client, &server, "alice").await;
    let key = signing_key(&server, &alice.did).await;

    let mut live = connect(&server, None).await;
    for rkey in ["a1", "a2", "a3"] {
        create(&server, &alice, rkey).await;
    }
    xrpc(
        &server,
        &alice,
        "com.atproto.repo.putRecord",
        json!({"repo": alice.did, "collection": "app.bsky.feed.post", "rkey": "a2", "record": post("edited")}),
    )
    .await;
    xrpc(
        &server,
        &alice,
        "com.atproto.repo.deleteRecord",
        json!({"repo": alice.did, "collection": "app.bsky.feed.post", "rkey": "a1"}),
    )
    .await;
    let mut frames = Vec::new();
    for _ in 0..5 {
        frames.push(next(&mut live).await.expect("live frame"));
    }
    assert_quiet(&mut live).await;
    let actions: Vec<String> = frames
        .iter()
        .map(|f| {
            let op = &f.body.get("ops").and_then(Value::as_array).expect("ops")[0];
            format!(
                "{} {}",
                op.get("action").and_then(Value::as_str).unwrap_or("?"),
                op.get("path").and_then(Value::as_str).unwrap_or("?")
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            "create app.bsky.feed.post/a1",
            "create app.bsky.feed.post/a2",
            "create app.bsky.feed.post/a3",
            "update app.bsky.feed.post/a2",
            "delete app.bsky.feed.post/a1"
        ]
    );
    for pair in frames.windows(2) {
        assert!(pair[0].seq() < pair[1].seq(), "seq not increasing");
    }
    for frame in &frames {
        check_commit(frame, &alice.did, &key);
    }
    let last = frames[4].seq();

    // Replay from 0: the account's creation events, then the same five frames, byte for byte.
    let mut ws = connect(&server, Some(0)).await;
    let replayed = frames_through(&mut ws, last).await;
    assert_quiet(&mut ws).await;
    for pair in replayed.windows(2) {
        assert!(pair[0].seq() < pair[1].seq(), "replay seq not increasing");
    }
    let kinds: Vec<&str> = replayed.iter().map(Frame::t).collect();
    assert!(
        kinds.contains(&"#identity") && kinds.contains(&"#account"),
        "{kinds:?}"
    );
    let tail: Vec<&Vec<u8>> = replayed[replayed.len() - 5..]
        .iter()
        .map(|f| &f.bytes)
        .collect();
    let live_bytes: Vec<&Vec<u8>> = frames.iter().map(|f| &f.bytes).collect();
    assert_eq!(tail, live_bytes, "replayed frames differ from live ones");

    // Replay from the middle, then live: exactly the missing events once, then new ones.
    let mut ws = connect(&server, Some(frames[1].seq())).await;
    let rest = frames_through(&mut ws, last).await;
    let seqs: Vec<i64> = rest.iter().map(Frame::seq).collect();
    let expected: Vec<i64> = frames[2..].iter().map(Frame::seq).collect();
    assert_eq!(seqs, expected);
    create(&server, &alice, "a4").await;
    let new = next(&mut ws).await.expect("live after replay");
    assert!(new.seq() > last);
    check_commit(&new, &alice.did, &key);
    let also = next(&mut live).await.expect("live");
    assert_eq!(also.bytes, new.bytes);
    assert_quiet(&mut ws).await;

    // A cursor in the future: an error frame, then the stream closes.
    let mut ws = connect(&server, Some(new.seq() + 1000)).await;
    let err = next(&mut ws).await.expect("error frame");
    assert_eq!(err.op(), -1);
    assert_eq!(
        err.body.get("error").and_then(Value::as_str),
        Some("FutureCursor")
    );
    assert!(next(&mut ws).await.is_none(), "stream not closed");

    // A bad cursor is refused before the upgrade.
    let url = format!(
        "ws://127.0.0.1:{}/xrpc/com.atproto.sync.subscribeRepos?cursor=abc",
        server.port
    );
    assert!(tokio_tungstenite::connect_async(url).await.is_err());
}

#[tokio::test]
async fn restart_and_wiped_log_never_go_back() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path(), &[]).await;
    let client = reqwest::Client::new();
    let bob = harness::create_account(&client, &server, "bob").await;
    create(&server, &bob, "b1").await;
    let before = head(&server).await;
    assert!(before > 0);

    // Restart; a subscriber resuming at `before` gets only what is new.
    server.restart().await;
    let mut ws = connect(&server, Some(before)).await;
    assert_quiet(&mut ws).await;
    create(&server, &bob, "b2").await;
    let frame = next(&mut ws).await.expect("frame after restart");
    assert_eq!(frame.t(), "#commit");
    assert!(frame.seq() > before);
    assert_quiet(&mut ws).await;
    let served = frame.seq();
    drop(ws);

    // Simulate restoring an old backup: no events, and the last sequence number forgotten.
    server.kill();
    {
        let db = rusqlite::Connection::open(data.path().join(pds_store::DB_FILE_NAME)).unwrap();
        let wiped = db.execute("DELETE FROM event", []).unwrap();
        assert!(wiped > 0);
        db.execute(
            "DELETE FROM meta WHERE key IN ('last_seq', 'seq_floor')",
            [],
        )
        .unwrap();
    }
    server.restart().await;
    let mut ws = connect(&server, None).await;
    create(&server, &bob, "b3").await;
    let frame = next(&mut ws).await.expect("frame after wipe");
    assert!(
        frame.seq() > served,
        "seq went back: {} after {served}",
        frame.seq()
    );
    assert_eq!(head(&server).await, frame.seq());
}
