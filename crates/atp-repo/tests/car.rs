//! CAR export, staging and full verification: round trips through our own exporter, the partial
//! export since a revision, the real repository vectors, and one test per refusal (hash
//! mismatch, missing blocks, bad and high-S signatures, MST order, non-canonical trees, bad
//! records), plus the read-ahead's batching.

mod hand_made;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use atp_crypto::{Curve, Keypair, PublicKey};
use atp_data::car::{CarReader, CarWriter};
use atp_data::cid::cid_for_cbor;
use atp_data::{Cid, Value};
use atp_repo::mst::NodeData;
use atp_repo::{
    ArenaExport, BlockArena, BlockKind, BlockMap, BlockStore, ExportError, FoundBlocks,
    MemoryBlockStore, RecordWrite, RepoHead, RepoSummary, SignatureStatus, SignedCommit,
    StoreError, Traversal, UnsignedCommit, VerifyError, Visit, apply_commit, create_repo,
    export_car, export_car_since, format_commit, verify_car, verify_repo,
};
use atp_syntax::{Did, Nsid, RecordKey, Tid};
use hand_made::{key_at, node};
use proptest::prelude::*;

const TESTDATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/vectors/extra/indigo/testing/testdata/"
);
const VECTOR_KEY: &str = "did:key:zQ3shXjHeiBuRCKmM36cuYnm7YEMzhGnCmCyW92sRJ9pribSF";
const COLLECTIONS: [&str; 3] = [
    "app.bsky.feed.like",
    "app.bsky.feed.post",
    "com.example.thing",
];

fn signer() -> Keypair {
    Keypair::from_private_bytes(Curve::K256, &[9u8; 32]).unwrap()
}

fn did() -> Did {
    "did:plc:44ybard66vv44zksje25o7dz".parse().unwrap()
}

fn clock(n: u64) -> Tid {
    Tid::from_parts(1_700_000_000_000_000 + n, 1)
}

fn record(i: usize) -> Value {
    Value::Map(BTreeMap::from([
        ("$type".to_owned(), Value::from("com.example.thing")),
        ("n".to_owned(), Value::Integer(i as i64)),
        // A few records share their content, so their blocks are shared.
        ("text".to_owned(), Value::from(format!("record {}", i % 97))),
    ]))
}

/// `n` records over [`COLLECTIONS`]; every fifth shares its content with another record.
fn records(n: usize) -> Vec<(Nsid, RecordKey, Value)> {
    records_with(n, true)
}

fn records_with(n: usize, shared: bool) -> Vec<(Nsid, RecordKey, Value)> {
    (0..n)
        .map(|i| {
            let collection = COLLECTIONS[i % COLLECTIONS.len()].parse().unwrap();
            let rkey = Tid::from_parts(1_600_000_000_000_000 + i as u64 * 7919, 0);
            let value = if shared && i % 5 == 0 {
                record(i % 97)
            } else {
                record(i)
            };
            (collection, rkey.to_string().parse().unwrap(), value)
        })
        .collect()
}

async fn repo(n: usize) -> (MemoryBlockStore, RepoHead) {
    let store = MemoryBlockStore::new();
    let (head, _) = create_repo(&store, &did(), records(n), &signer(), &clock(0))
        .await
        .unwrap();
    (store, head)
}

async fn export(store: &MemoryBlockStore, commit: &Cid) -> Vec<u8> {
    export_car(store, commit, Vec::new()).await.unwrap().0
}

fn read_blocks(car: &[u8]) -> (Vec<Cid>, Vec<(Cid, Vec<u8>)>) {
    let reader = CarReader::new(car).unwrap();
    let roots = reader.roots().to_vec();
    (roots, reader.collect::<Result<_, _>>().unwrap())
}

/// A CAR from explicit blocks, in the given order.
fn car_of(root: &Cid, blocks: &[(Cid, Vec<u8>)]) -> Vec<u8> {
    let mut w = CarWriter::new(Vec::new(), &[*root]).unwrap();
    for (cid, data) in blocks {
        w.write_block(cid, data).unwrap();
    }
    w.finish().unwrap()
}

fn vector(name: &str) -> Vec<u8> {
    std::fs::read(format!("{TESTDATA}{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[tokio::test]
async fn export_then_verify_round_trip() {
    let (store, head) = repo(600).await;
    let car = export(&store, &head.cid).await;
    let (roots, blocks) = read_blocks(&car);
    assert_eq!(roots, vec![head.cid]);
    assert_eq!(blocks[0].0, head.cid, "commit block first");
    let written: BTreeSet<Cid> = blocks.iter().map(|(c, _)| *c).collect();
    assert_eq!(written.len(), blocks.len(), "no block written twice");
    let stored: BTreeSet<Cid> = store.all_blocks().into_keys().collect();
    assert_eq!(written, stored, "exactly the repository's blocks");

    let key = signer().public_key();
    let summary = verify_car(car.as_slice(), Some(&key)).unwrap();
    assert_eq!(summary.did, did());
    assert_eq!(summary.rev, Some(clock(0)));
    assert_eq!(summary.version, 3);
    assert_eq!(summary.commit, head.cid);
    assert_eq!(summary.data, *head.commit.data());
    assert_eq!(summary.signature, SignatureStatus::Valid);
    assert_eq!(summary.records, 600);
    assert_eq!(
        summary.collections,
        COLLECTIONS
            .iter()
            .map(|c| (c.to_string(), 200))
            .collect::<BTreeMap<_, _>>()
    );
    let unchecked = verify_car(car.as_slice(), None).unwrap();
    assert_eq!(unchecked.signature, SignatureStatus::NotChecked);

    // Blocks may come in any order: reversed, the CAR verifies the same.
    let mut reversed = blocks.clone();
    reversed.reverse();
    let again = verify_car(car_of(&head.cid, &reversed).as_slice(), Some(&key)).unwrap();
    assert_eq!(again, summary);
}

#[tokio::test]
async fn records_come_in_key_order_whatever_the_window() {
    let (store, head) = repo(300).await;
    let mut expected = Vec::new();
    let mut walk = Traversal::new(&store, *head.commit.data());
    while let Some(v) = walk.next().await.unwrap() {
        expected.push(v);
    }
    let keys: Vec<&str> = expected
        .iter()
        .filter_map(|v| match v {
            Visit::Record { key, .. } => Some(&**key),
            Visit::Node { .. } => None,
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(keys.len(), 300);
    for window in [1, 2, 7, 64] {
        let mut walk = Traversal::new(&store, *head.commit.data()).window(window);
        let mut got = Vec::new();
        while let Some(v) = walk.next().await.unwrap() {
            got.push(v);
        }
        assert_eq!(got, expected, "window {window}");
    }
}

/// A store that records the size of every batch read.
#[derive(Default)]
struct BatchLog {
    inner: MemoryBlockStore,
    batches: Mutex<Vec<usize>>,
}

impl BlockStore for BatchLog {
    async fn get_block(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError> {
        self.batches.lock().unwrap().push(1);
        self.inner.get_block(cid).await
    }
    async fn has_block(&self, cid: &Cid) -> Result<bool, StoreError> {
        self.inner.has_block(cid).await
    }
    async fn get_blocks(&self, cids: &[Cid]) -> Result<FoundBlocks, StoreError> {
        self.batches.lock().unwrap().push(cids.len());
        self.inner.get_blocks(cids).await
    }
    async fn put_blocks(&self, blocks: &BlockMap, rev: &Tid) -> Result<(), StoreError> {
        self.inner.put_blocks(blocks, rev).await
    }
    async fn delete_blocks(&self, cids: &[Cid]) -> Result<(), StoreError> {
        self.inner.delete_blocks(cids).await
    }
}

#[tokio::test]
async fn export_reads_in_batches() {
    let store = BatchLog::default();
    let (head, _) = create_repo(&store, &did(), records(3000), &signer(), &clock(0))
        .await
        .unwrap();
    let (car, stats) = export_car(&store, &head.cid, Vec::new()).await.unwrap();
    let blocks = store.inner.len() as u64;
    assert_eq!(stats.blocks, blocks);
    assert_eq!(stats.records, 3000);
    assert_eq!(stats.bytes, car.len() as u64);
    let batches = store.batches.lock().unwrap().clone();
    let read: usize = batches.iter().sum();
    assert!(
        batches.len() < 40,
        "{} reads for {blocks} blocks: {batches:?}",
        batches.len()
    );
    assert!(read as u64 <= blocks + 1, "each block read once: {read}");
}

#[tokio::test]
async fn since_export_pages_through_the_store() {
    let (store, head) = repo(1500).await;
    let before = Tid::from_u64(0);
    let (car, stats) = export_car_since(&store, &head.cid, &before, Vec::new())
        .await
        .unwrap();
    let (roots, blocks) = read_blocks(&car);
    assert_eq!(roots, vec![head.cid]);
    assert_eq!(blocks[0].0, head.cid);
    assert!(blocks.len() > 1000, "more than one page: {}", blocks.len());
    assert_eq!(stats.blocks, store.len() as u64);
    let got: BTreeSet<Cid> = blocks.iter().map(|(c, _)| *c).collect();
    assert_eq!(got, store.all_blocks().into_keys().collect());
    // Everything since the genesis rev is a full repository again.
    verify_car(car.as_slice(), Some(&signer().public_key())).unwrap();

    // A store that cannot list by revision says so.
    let other = BatchLog::default();
    let (head, _) = create_repo(&other, &did(), records(3), &signer(), &clock(0))
        .await
        .unwrap();
    let err = export_car_since(&other, &head.cid, &before, Vec::new())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("cannot list blocks by revision"),
        "{err}"
    );
}

#[tokio::test]
async fn corrupted_node_in_a_store_is_a_hash_mismatch() {
    let (store, head) = repo(300).await;
    let mut blocks = store.all_blocks();
    let root = *head.commit.data();
    let bytes = blocks.get_mut(&root).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    // `from_blocks` does not check hashes: a store that went bad.
    let bad = MemoryBlockStore::from_blocks(blocks);
    let err = verify_repo(&bad, &head.cid, None).await.unwrap_err();
    assert!(
        matches!(err, VerifyError::HashMismatch { cid } if cid == root),
        "{err}"
    );
    let err = export_car(&bad, &head.cid, Vec::new()).await.unwrap_err();
    assert!(err.to_string().contains("hash mismatch"), "{err}");
}

#[tokio::test]
async fn export_after_updates_and_deletes() {
    // Unshared records: `apply_commit` deletes the blocks of removed records even when another
    // key still holds the same content (reported; not what this test is about).
    let recs = records_with(200, false);
    let store = MemoryBlockStore::new();
    let (mut head, _) = create_repo(&store, &did(), recs.clone(), &signer(), &clock(0))
        .await
        .unwrap();
    let mut writes = Vec::new();
    for (i, (collection, rkey, _)) in recs.iter().enumerate().take(40) {
        writes.push(if i % 2 == 0 {
            RecordWrite::Delete {
                collection: collection.clone(),
                rkey: rkey.clone(),
            }
        } else {
            RecordWrite::Update {
                collection: collection.clone(),
                rkey: rkey.clone(),
                record: record(10_000 + i),
            }
        });
    }
    let first = head.commit.rev().cloned().unwrap();
    let commit = format_commit(&store, Some(&head), &did(), &writes, &signer(), &clock(5))
        .await
        .unwrap();
    head = apply_commit(&store, &commit).await.unwrap();

    let car = export(&store, &head.cid).await;
    let summary = verify_car(car.as_slice(), Some(&signer().public_key())).unwrap();
    assert_eq!(summary.records, 180);
    assert_eq!(summary.rev, Some(commit.rev.clone()));

    // since the first revision: the new commit and exactly the blocks it introduced.
    let (since, stats) = export_car_since(&store, &head.cid, &first, Vec::new())
        .await
        .unwrap();
    let (roots, blocks) = read_blocks(&since);
    assert_eq!(roots, vec![head.cid]);
    assert_eq!(blocks[0].0, head.cid);
    assert_eq!(stats.blocks, blocks.len() as u64);
    let got: BTreeSet<Cid> = blocks.iter().map(|(c, _)| *c).collect();
    let want: BTreeSet<Cid> = commit.new_blocks.keys().copied().collect();
    assert_eq!(got, want);
    // since the new revision: only the commit.
    let (latest, _) = export_car_since(&store, &head.cid, &commit.rev, Vec::new())
        .await
        .unwrap();
    assert_eq!(read_blocks(&latest).1.len(), 1);
}

#[test]
fn real_repository_vectors() {
    let key = PublicKey::from_did_key(VECTOR_KEY).unwrap();
    let green = verify_car(vector("greenground.repo.car").as_slice(), Some(&key)).unwrap();
    assert_eq!(green.version, 3);
    assert_eq!(green.rev.as_ref().map(Tid::as_str), Some("3k67up3j7hf2x"));
    assert_eq!(green.records, 2);
    assert_eq!(green.collections["app.bsky.graph.follow"], 2);
    assert_eq!(green.signature, SignatureStatus::Valid);

    let divy = verify_car(vector("divy.repo").as_slice(), Some(&key)).unwrap();
    assert_eq!((divy.version, divy.rev.clone()), (2, None));
    assert_eq!(divy.records, 6);
    assert_eq!(
        divy.collections.get("app.bsky.system.declaration"),
        Some(&1)
    );

    // Signed by another account's key: with the vector key it is a bad signature (not high-S,
    // although its S is high: the low-S twin does not verify either).
    let slice = verify_car(vector("repo_slice.car").as_slice(), Some(&key));
    assert!(
        matches!(slice, Err(VerifyError::BadSignature { .. })),
        "repo_slice.car: {slice:?}"
    );
    let slice = verify_car(vector("repo_slice.car").as_slice(), None);
    assert!(
        matches!(slice, Err(VerifyError::MissingBlock { .. })),
        "repo_slice.car: {slice:?}"
    );
}

#[tokio::test]
async fn refusals_name_the_reason() {
    let (store, head) = repo(50).await;
    let car = export(&store, &head.cid).await;
    let (_, blocks) = read_blocks(&car);
    let key = signer().public_key();

    let mut flipped = car.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    let err = verify_car(flipped.as_slice(), Some(&key)).unwrap_err();
    assert!(
        matches!(err, VerifyError::HashMismatch { cid } if cid == blocks.last().unwrap().0),
        "{err}"
    );
    assert!(err.to_string().starts_with("hash mismatch"), "{err}");

    let other = Keypair::from_private_bytes(Curve::K256, &[4u8; 32]).unwrap();
    let err = verify_car(car.as_slice(), Some(&other.public_key())).unwrap_err();
    assert!(matches!(err, VerifyError::BadSignature { .. }), "{err}");
    assert!(err.to_string().starts_with("bad signature"), "{err}");

    let err = verify_car(car_of(&head.cid, &blocks[1..]).as_slice(), None).unwrap_err();
    assert!(
        matches!(err, VerifyError::MissingBlock { kind: BlockKind::Commit, cid } if cid == head.cid),
        "{err}"
    );
    let record_index = blocks
        .iter()
        .position(|(cid, _)| cid.codec() == atp_data::cid::DAG_CBOR && is_record(&blocks, cid))
        .unwrap();
    let mut without = blocks.clone();
    let (gone, _) = without.remove(record_index);
    let err = verify_car(car_of(&head.cid, &without).as_slice(), None).unwrap_err();
    assert!(
        matches!(&err, VerifyError::MissingBlock { kind: BlockKind::Record { .. }, cid } if *cid == gone),
        "{err}"
    );
    assert!(err.to_string().starts_with("missing block"), "{err}");

    let err = verify_car(&car[..car.len() - 3], None).unwrap_err();
    assert!(matches!(err, VerifyError::InvalidCar(_)), "{err}");
}

/// Whether `cid` is a record block (not the commit, not a node) in an export of ours.
fn is_record(blocks: &[(Cid, Vec<u8>)], cid: &Cid) -> bool {
    let bytes = &blocks.iter().find(|(c, _)| c == cid).unwrap().1;
    NodeData::from_cbor(bytes).is_err() && SignedCommit::from_cbor(bytes).is_err()
}

/// secp256k1's group order, big-endian.
const K256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
];

/// `n - s`: the high-S twin of a low-S signature.
fn high_s(sig: &[u8]) -> Vec<u8> {
    let mut out = sig.to_vec();
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = K256_ORDER[i] as i16 - sig[32 + i] as i16 - borrow;
        borrow = i16::from(d < 0);
        out[32 + i] = d.rem_euclid(256) as u8;
    }
    out
}

#[tokio::test]
async fn high_s_signature_is_its_own_error() {
    let (store, head) = repo(10).await;
    let mut commit = head.commit.clone();
    commit.sig = high_s(&commit.sig);
    let bytes = commit.to_cbor();
    let cid = cid_for_cbor(&bytes);
    store
        .put_blocks(&BlockMap::from([(cid, bytes)]), &clock(1))
        .await
        .unwrap();
    let car = export(&store, &cid).await;
    let err = verify_car(car.as_slice(), Some(&signer().public_key())).unwrap_err();
    assert!(matches!(err, VerifyError::HighS { .. }), "{err}");
    assert!(err.to_string().starts_with("high-S"), "{err}");
}

/// A signed CAR over hand-made MST nodes (and one record block all entries point to).
fn crafted(nodes: &[(Cid, Vec<u8>)], record: &(Cid, Vec<u8>)) -> Vec<u8> {
    let root = nodes[0].0;
    let commit = UnsignedCommit::v3(did(), root, clock(0))
        .sign(&signer())
        .unwrap();
    let bytes = commit.to_cbor();
    let cid = cid_for_cbor(&bytes);
    let mut blocks = vec![(cid, bytes)];
    blocks.extend(nodes.iter().cloned());
    blocks.push(record.clone());
    car_of(&cid, &blocks)
}

fn verify_nodes(
    nodes: &[(Cid, Vec<u8>)],
    record: &(Cid, Vec<u8>),
) -> Result<RepoSummary, VerifyError> {
    let car = crafted(nodes, record);
    let verdict = verify_car(car.as_slice(), None);
    // The in-memory export refuses exactly what verification refuses, for the same reason.
    let (roots, blocks) = read_blocks(&car);
    let planned = ArenaExport::plan(&arena_of(&blocks), &roots[0]);
    match (&verdict, &planned) {
        (Ok(_), Ok(_)) => {}
        (Err(v), Err(ExportError::Repo(p))) => assert_eq!(
            std::mem::discriminant(v),
            std::mem::discriminant(p),
            "verify: {v}; arena export: {p}"
        ),
        (v, p) => panic!("verify: {v:?}; arena export: {p:?}"),
    }
    verdict
}

fn arena_of(blocks: &[(Cid, Vec<u8>)]) -> BlockArena {
    let mut arena = BlockArena::new();
    for (cid, bytes) in blocks {
        arena.insert(cid, bytes);
    }
    arena
}

/// The blocks of a CAR with repeats dropped (first occurrence kept).
fn unique(blocks: Vec<(Cid, Vec<u8>)>) -> Vec<(Cid, Vec<u8>)> {
    let mut seen = BTreeSet::new();
    blocks
        .into_iter()
        .filter(|(c, _)| seen.insert(*c))
        .collect()
}

#[tokio::test]
async fn arena_export_is_the_streamed_export() {
    let (store, head) = repo(3000).await;
    let streamed = export(&store, &head.cid).await;
    let (_, blocks) = read_blocks(&streamed);
    let arena = arena_of(&store.all_blocks().into_iter().collect::<Vec<_>>());
    let (car, stats) = atp_repo::export_car_from_arena(&arena, &head.cid, Vec::new()).unwrap();
    let (roots, got) = read_blocks(&car);
    assert_eq!(roots, vec![head.cid]);
    // Same blocks in the same order, each once (shared record blocks included).
    assert_eq!(got, unique(blocks));
    assert_eq!(stats.records, 3000);
    assert_eq!(stats.blocks, got.len() as u64);
    assert_eq!(stats.bytes, car.len() as u64);
    verify_car(car.as_slice(), Some(&signer().public_key())).unwrap();

    // Missing and corrupted blocks are refused before anything is written.
    let mut without = store.all_blocks();
    let (_, record) = got
        .iter()
        .find(|(c, b)| is_record(&got, c) && !b.is_empty())
        .unwrap()
        .clone();
    let record_cid = got.iter().find(|(_, b)| *b == record).unwrap().0;
    without.remove(&record_cid);
    let err = ArenaExport::plan(
        &arena_of(&without.into_iter().collect::<Vec<_>>()),
        &head.cid,
    )
    .unwrap_err();
    assert!(
        matches!(&err, ExportError::Repo(VerifyError::MissingBlock { kind: BlockKind::Record { .. }, cid }) if *cid == record_cid),
        "{err}"
    );
    let mut corrupt = store.all_blocks();
    let root = *head.commit.data();
    let last = corrupt[&root].len() - 1;
    corrupt.get_mut(&root).unwrap()[last] ^= 1;
    let err = ArenaExport::plan(
        &arena_of(&corrupt.into_iter().collect::<Vec<_>>()),
        &head.cid,
    )
    .unwrap_err();
    assert!(
        matches!(err, ExportError::Repo(VerifyError::HashMismatch { cid }) if cid == root),
        "{err}"
    );
    let err = ArenaExport::plan(&BlockArena::new(), &head.cid).unwrap_err();
    assert!(
        matches!(
            err,
            ExportError::Repo(VerifyError::MissingBlock {
                kind: BlockKind::Commit,
                ..
            })
        ),
        "{err}"
    );
}

#[test]
fn mst_structure_refusals() {
    let rec_bytes = atp_data::cbor::to_vec(&record(1));
    let rec = (cid_for_cbor(&rec_bytes), rec_bytes);
    let v = rec.0;
    let high = key_at(1, 0);
    let low_after = key_at(0, 500_000);
    let (a, b) = (key_at(0, 0), key_at(0, 100_000));
    assert!(low_after > high && b > a);
    let verify = |nodes: &[(Cid, Vec<u8>)]| verify_nodes(nodes, &rec);

    // Sanity: a canonical two-layer tree passes.
    let child = node(None, &[(a.as_str(), v, None)]);
    let root = node(Some(child.0), &[(high.as_str(), v, None)]);
    verify(&[root, child]).unwrap();

    // A key greater than its parent's key in the left subtree.
    let child = node(None, &[(low_after.as_str(), v, None)]);
    let root = node(Some(child.0), &[(high.as_str(), v, None)]);
    let err = verify(&[root, child]).unwrap_err();
    assert!(matches!(err, VerifyError::BadMstOrder { .. }), "{err}");
    assert!(err.to_string().starts_with("bad MST order"), "{err}");

    // Keys descending within one node.
    let flat = node(None, &[(b.as_str(), v, None), (a.as_str(), v, None)]);
    let err = verify(&[flat]).unwrap_err();
    assert!(matches!(err, VerifyError::BadMstOrder { .. }), "{err}");

    // A skipped layer: a height-0 key directly under a height-2 node.
    let top = key_at(2, 0);
    let child = node(None, &[(a.as_str(), v, None)]);
    let root = node(Some(child.0), &[(top.as_str(), v, None)]);
    let err = verify(&[root, child]).unwrap_err();
    assert!(matches!(err, VerifyError::BadMstNode { .. }), "{err}");

    // An empty intermediate node, and an untrimmed root.
    let empty = node(None, &[]);
    let root = node(Some(empty.0), &[(high.as_str(), v, None)]);
    let err = verify(&[root, empty]).unwrap_err();
    assert!(matches!(err, VerifyError::BadMstNode { .. }), "{err}");
    let leaf = node(None, &[(a.as_str(), v, None)]);
    let untrimmed = node(Some(leaf.0), &[]);
    let err = verify(&[untrimmed, leaf]).unwrap_err();
    assert!(matches!(err, VerifyError::BadMstNode { .. }), "{err}");
}

#[test]
fn bad_records_are_refused() {
    let high = key_at(0, 0);
    for (what, bytes) in [
        ("not a map", atp_data::cbor::to_vec(&Value::Integer(5))),
        ("non-canonical", vec![0xa1, 0x61, b'a', 0x18, 0x01]),
    ] {
        let rec = (cid_for_cbor(&bytes), bytes);
        let root = node(None, &[(high.as_str(), rec.0, None)]);
        let err = verify_car(crafted(&[root], &rec).as_slice(), None).unwrap_err();
        assert!(
            matches!(err, VerifyError::BadRecord { .. }),
            "{what}: {err}"
        );
    }
}

#[tokio::test]
async fn verify_repo_on_a_store() {
    let (store, head) = repo(120).await;
    let summary = verify_repo(&store, &head.cid, Some(&signer().public_key()))
        .await
        .unwrap();
    assert_eq!(summary.records, 120);
    assert!(summary.mst_nodes > 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any set of keys: export, then verify, gives back the same root and count.
    #[test]
    fn export_verify_round_trip(ids in proptest::collection::btree_set(0u32..5_000, 0..150)) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let recs: Vec<_> = ids
            .iter()
            .map(|i| (
                COLLECTIONS[*i as usize % 3].parse().unwrap(),
                format!("r{i}").parse().unwrap(),
                record(*i as usize % 7),
            ))
            .collect();
        let store = MemoryBlockStore::new();
        let (head, _) = rt
            .block_on(create_repo(&store, &did(), recs, &signer(), &clock(0)))
            .unwrap();
        let car = rt.block_on(export(&store, &head.cid));
        let summary = verify_car(car.as_slice(), Some(&signer().public_key())).unwrap();
        prop_assert_eq!(summary.records, ids.len() as u64);
        prop_assert_eq!(summary.data, *head.commit.data());
        let arena = arena_of(&store.all_blocks().into_iter().collect::<Vec<_>>());
        let (from_arena, _) =
            atp_repo::export_car_from_arena(&arena, &head.cid, Vec::new()).unwrap();
        prop_assert_eq!(read_blocks(&from_arena).1, unique(read_blocks(&car).1));
    }
}
