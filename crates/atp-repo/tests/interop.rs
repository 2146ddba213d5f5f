//! Conformance against the shared vectors: MST key heights and prefixes, known tree roots, and
//! recorded relay scenarios (commit signatures and sync v1.1 inversion).

use std::collections::BTreeMap;

use atp_crypto::PublicKey;
use atp_data::Cid;
use atp_data::car::CarReader;
use atp_repo::mst::{common_prefix_len, height_for_key};
use atp_repo::{
    BlockMap, BlockStore, MemoryBlockStore, Mst, RecordOp, SignedCommit, WriteAction,
    verify_prev_data,
};
use serde_json::Value as Json;

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/vectors/");

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{VECTORS}{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn json(path: &str) -> Json {
    serde_json::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn cid(s: &str) -> Cid {
    atp_data::cid::parse(s).unwrap()
}

fn check_height(file: &str, index: usize, key: &str, expected: u8) {
    assert_eq!(
        height_for_key(key.as_bytes()),
        expected,
        "{file}[{index}]: key {key:?}"
    );
}

#[test]
fn key_heights() {
    let file = "mst/key_heights.json";
    let cases = json(file);
    let cases = cases.as_array().unwrap();
    assert!(!cases.is_empty());
    for (i, case) in cases.iter().enumerate() {
        let height = case["height"].as_u64().unwrap() as u8;
        check_height(file, i, case["key"].as_str().unwrap(), height);
    }
}

#[test]
fn example_keys() {
    let file = "mst/example_keys.txt";
    let text = read(file);
    let mut count = 0;
    for (line_no, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let digit = line.chars().nth(1).and_then(|c| c.to_digit(10));
        let digit = digit.unwrap_or_else(|| panic!("{file}:{}: no height digit", line_no + 1));
        check_height(file, line_no + 1, line, digit as u8);
        count += 1;
    }
    assert_eq!(count, 156, "{file}: line count");
}

#[test]
fn common_prefix() {
    let file = "mst/common_prefix.json";
    let cases = json(file);
    for (i, case) in cases.as_array().unwrap().iter().enumerate() {
        let (left, right) = (
            case["left"].as_str().unwrap(),
            case["right"].as_str().unwrap(),
        );
        let expected = case["len"].as_u64().unwrap() as usize;
        assert_eq!(
            common_prefix_len(left.as_bytes(), right.as_bytes()),
            expected,
            "{file}[{i}]: {left:?} / {right:?}"
        );
    }
}

/// Checks a tree's root CID and height against a vector.
fn check_root(what: &str, tree: &Mst, root: &str, height: u64) {
    assert_eq!(tree.root_cid(), cid(root), "{what}: root CID");
    assert_eq!(
        tree.root_height(),
        Some(height as u8),
        "{what}: root height"
    );
}

fn strings(v: &Json) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn known_trees() {
    let file = "extra/derived/mst_known_trees.json";
    let doc = json(file);
    let leaf = cid(doc["leafValue"].as_str().unwrap());
    let store = MemoryBlockStore::new();
    for tree in doc["trees"].as_array().unwrap() {
        let name = format!("{file} tree {:?}", tree["name"].as_str().unwrap());
        let keys = strings(&tree["keys"]);
        let (root, height) = (
            tree["rootCid"].as_str().unwrap(),
            tree["rootHeight"].as_u64().unwrap(),
        );
        let bulk = Mst::from_entries(keys.iter().map(|k| (k.clone(), leaf))).unwrap();
        check_root(&format!("{name} (bulk)"), &bulk, root, height);
        for order in [keys.clone(), keys.iter().rev().cloned().collect()] {
            let mut t = Mst::empty();
            for key in &order {
                t = t.insert(&store, key, leaf).await.unwrap().0;
            }
            check_root(&format!("{name} (inserted)"), &t, root, height);
        }
    }
    for seq in doc["sequences"].as_array().unwrap() {
        let name = format!("{file} sequence {:?}", seq["name"].as_str().unwrap());
        check_sequence(&name, seq, leaf).await;
    }
}

/// Runs a sequence twice: on an in-memory tree, and on a tree reloaded lazily from a store.
async fn check_sequence(name: &str, seq: &Json, leaf: Cid) {
    let keys = strings(&seq["initialKeys"]);
    let initial = Mst::from_entries(keys.iter().map(|k| (k.clone(), leaf))).unwrap();
    let (root, height) = (
        seq["initialRootCid"].as_str().unwrap(),
        seq["initialRootHeight"].as_u64().unwrap(),
    );
    check_root(&format!("{name} initial"), &initial, root, height);

    let store = MemoryBlockStore::new();
    let rev = "3jzfcijpj2z2a".parse().unwrap();
    let blocks: BlockMap = initial
        .walk_loaded()
        .filter_map(|item| match item.unwrap() {
            atp_repo::mst::WalkItem::Node { cid, bytes } => Some((cid, bytes)),
            atp_repo::mst::WalkItem::Leaf(_) => None,
        })
        .collect();
    store.put_blocks(&blocks, &rev).await.unwrap();

    for (label, mut tree) in [
        ("memory", initial.clone()),
        ("stored", Mst::load(initial.root_cid())),
    ] {
        for (i, step) in seq["steps"].as_array().unwrap().iter().enumerate() {
            let key = step["key"].as_str().unwrap();
            tree = match step["op"].as_str().unwrap() {
                "insert" => tree.insert(&store, key, leaf).await.unwrap().0,
                "delete" => tree.delete(&store, key).await.unwrap().0,
                other => panic!("{name} step {i}: unknown op {other}"),
            };
            // Make sure the root is loaded before asking for its height.
            tree.get(&store, key).await.unwrap();
            let what = format!("{name} ({label}) step {i} {key}");
            check_root(
                &what,
                &tree,
                step["rootCidAfter"].as_str().unwrap(),
                step["rootHeightAfter"].as_u64().unwrap(),
            );
        }
    }
}

/// A frame body's `$link` field.
fn link(body: &atp_data::Value, field: &str) -> Option<Cid> {
    body.get(field).and_then(atp_data::Value::as_link).copied()
}

fn parse_ops(body: &atp_data::Value) -> Vec<RecordOp> {
    let ops = body
        .get("ops")
        .and_then(atp_data::Value::as_array)
        .unwrap_or_default();
    ops.iter()
        .map(|op| RecordOp {
            action: match op.get("action").and_then(atp_data::Value::as_str) {
                Some("create") => WriteAction::Create,
                Some("update") => WriteAction::Update,
                Some("delete") => WriteAction::Delete,
                other => panic!("unknown action {other:?}"),
            },
            path: op
                .get("path")
                .and_then(atp_data::Value::as_str)
                .unwrap()
                .to_owned(),
            cid: link(op, "cid"),
            prev: link(op, "prev"),
        })
        .collect()
}

/// Checks one `#commit` or `#sync` frame: the commit signature, the envelope, and for commits
/// the ops (forwards, and inverted against `prevData` when present).
fn check_frame(what: &str, key: &PublicKey, kind: &str, body: &atp_data::Value) -> bool {
    let car = body
        .get("blocks")
        .and_then(atp_data::Value::as_bytes)
        .unwrap();
    let mut reader = CarReader::new(car).unwrap();
    let root = reader.roots()[0];
    let blocks: BlockMap = reader.by_ref().map(|b| b.unwrap()).collect();
    let commit = SignedCommit::from_cbor(&blocks[&root]).unwrap_or_else(|e| panic!("{what}: {e}"));
    commit
        .verify(key)
        .unwrap_or_else(|e| panic!("{what}: signature: {e}"));
    let repo = body
        .get("repo")
        .or_else(|| body.get("did"))
        .and_then(atp_data::Value::as_str);
    assert_eq!(repo, Some(commit.did().as_str()), "{what}: did");
    if kind == "#sync" {
        return false;
    }
    assert_eq!(
        link(body, "commit"),
        Some(root),
        "{what}: commit CID is the CAR root"
    );
    let ops = parse_ops(body);
    let tree = Mst::load(*commit.data());
    for op in ops.iter().filter(|op| op.action != WriteAction::Delete) {
        assert_eq!(
            tree.get_from(&blocks, &op.path).unwrap(),
            op.cid,
            "{what}: {}",
            op.path
        );
    }
    let Some(prev_data) = link(body, "prevData") else {
        return false;
    };
    verify_prev_data(commit.data(), &ops, &blocks, &prev_data)
        .unwrap_or_else(|e| panic!("{what}: inversion: {e}"));
    // The check can fail: a wrong prevData, or a missing proof block.
    assert!(
        verify_prev_data(commit.data(), &ops, &blocks, commit.data()).is_err(),
        "{what}"
    );
    let mst_nodes: Vec<Cid> = blocks
        .keys()
        .filter(|c| **c != root && ops.iter().all(|o| o.cid != Some(**c)))
        .copied()
        .collect();
    for node in mst_nodes {
        let mut fewer = blocks.clone();
        fewer.remove(&node);
        assert!(
            verify_prev_data(commit.data(), &ops, &fewer, &prev_data).is_err(),
            "{what}: without {node}"
        );
    }
    true
}

#[test]
fn relay_scenarios() {
    let dir = "extra/indigo/cmd/relay/testing/testdata";
    let mut inverted = 0;
    let mut frames = 0;
    for name in [
        "account_lifecycle.json",
        "legacy.json",
        "post_lifecycle_legacy.json",
        "rev_ordering.json",
    ] {
        let file = format!("{dir}/{name}");
        let doc = json(&file);
        let keys: BTreeMap<String, PublicKey> = doc["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                let id = &a["identity"];
                let multibase = id["keys"]["atproto"]["publicKeyMultibase"]
                    .as_str()
                    .unwrap();
                let key = PublicKey::from_did_key(&format!("did:key:{multibase}")).unwrap();
                (id["did"].as_str().unwrap().to_owned(), key)
            })
            .collect();
        for (i, msg) in doc["messages"].as_array().unwrap().iter().enumerate() {
            let kind = msg["frame"]["header"]["t"].as_str().unwrap();
            if kind != "#commit" && kind != "#sync" {
                continue;
            }
            let body = atp_data::json::from_json(&msg["frame"]["body"]).unwrap();
            let did = body
                .get("repo")
                .or_else(|| body.get("did"))
                .and_then(atp_data::Value::as_str)
                .unwrap();
            let what = format!("{file} message {i} ({kind})");
            frames += 1;
            if check_frame(&what, &keys[did], kind, &body) {
                inverted += 1;
            }
        }
    }
    assert_eq!(frames, 12, "frames checked");
    assert_eq!(inverted, 4, "frames inverted against prevData");
}

/// Reads a CAR file from the vectors: its root and its blocks.
fn read_car(path: &str) -> (Cid, BlockMap) {
    let bytes = std::fs::read(format!("{VECTORS}{path}")).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut reader = CarReader::new(bytes.as_slice()).unwrap_or_else(|e| panic!("{path}: {e}"));
    let root = reader.roots()[0];
    let blocks = reader
        .by_ref()
        .map(|b| b.unwrap_or_else(|e| panic!("{path}: {e}")))
        .collect();
    (root, blocks)
}

/// Checks a full repository export: the commit verifies with the (legacy) key, and rebuilding the
/// MST from its leaves gives the committed root.
fn check_full_repo(path: &str, key: &PublicKey, version: u8, leaves: usize) {
    let (root, blocks) = read_car(path);
    let commit = SignedCommit::from_cbor(&blocks[&root]).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(commit.commit.version, version, "{path}: version");
    assert_eq!(commit.rev().is_some(), version == 3, "{path}: rev");
    assert_eq!(commit.cid(), root, "{path}: commit re-encodes to its CID");
    commit
        .verify(key)
        .unwrap_or_else(|e| panic!("{path}: signature: {e}"));
    let tree = Mst::load(*commit.data());
    let entries = tree
        .leaves_from(&blocks)
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(entries.len(), leaves, "{path}: leaf count");
    let rebuilt = Mst::from_entries(entries.into_iter().map(|e| (e.key, e.value))).unwrap();
    assert_eq!(
        rebuilt.root_cid(),
        *commit.data(),
        "{path}: rebuilt MST root"
    );
}

#[test]
fn real_repositories() {
    let dir = "extra/indigo/testing/testdata";
    let doc = json(&format!("{dir}/greenground.didDoc.json"));
    let multibase = doc["verificationMethod"][0]["publicKeyMultibase"]
        .as_str()
        .unwrap();
    let key = PublicKey::from_legacy_multibase(atp_crypto::Curve::K256, multibase).unwrap();
    assert_eq!(
        key.did_key(),
        "did:key:zQ3shXjHeiBuRCKmM36cuYnm7YEMzhGnCmCyW92sRJ9pribSF"
    );
    check_full_repo(&format!("{dir}/greenground.repo.car"), &key, 3, 2);
    check_full_repo(&format!("{dir}/divy.repo"), &key, 2, 6);

    // A partial export: the path to one record proves it; other paths report missing blocks.
    let (root, blocks) = read_car(&format!("{dir}/repo_slice.car"));
    let commit = SignedCommit::from_cbor(&blocks[&root]).unwrap();
    let found =
        atp_repo::verify_record_proof(commit.data(), "app.bsky.feed.post/3jquh3emtzo2o", &blocks)
            .unwrap();
    let record = atp_data::cbor::from_slice(&blocks[&found.unwrap()]).unwrap();
    let expected = json(&format!("{dir}/repo_slice_record.json"));
    assert_eq!(
        atp_data::json::to_json(&record),
        expected["value"],
        "repo_slice record"
    );
    let tree = Mst::load(*commit.data());
    assert!(matches!(
        tree.leaves_from(&blocks),
        Err(atp_repo::MstError::MissingBlocks { .. })
    ));
}

/// Recorded sync 1.0 `#commit` bodies (no signing key, no prevData): format facts only.
#[test]
fn firehose_commit_bodies() {
    for name in [
        "firehose_commit_4621317030.json",
        "firehose_commit_4621317332.json",
    ] {
        let file = format!("extra/indigo/atproto/repo/testdata/{name}");
        let body = atp_data::json::from_json(&json(&file)).unwrap();
        let car = body
            .get("blocks")
            .and_then(atp_data::Value::as_bytes)
            .unwrap();
        let mut reader = CarReader::new(car).unwrap();
        let root = reader.roots()[0];
        let blocks: BlockMap = reader.by_ref().map(|b| b.unwrap()).collect();
        assert_eq!(
            link(&body, "commit"),
            Some(root),
            "{file}: CAR root is the commit"
        );
        let commit =
            SignedCommit::from_cbor(&blocks[&root]).unwrap_or_else(|e| panic!("{file}: {e}"));
        let rev = body.get("rev").and_then(atp_data::Value::as_str);
        assert_eq!(commit.rev().map(|r| r.as_str()), rev, "{file}: rev");
        let tree = Mst::load(*commit.data());
        for op in parse_ops(&body) {
            assert_eq!(
                tree.get_from(&blocks, &op.path).unwrap(),
                op.cid,
                "{file}: {}",
                op.path
            );
        }
    }
}
