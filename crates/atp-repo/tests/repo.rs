//! The write path on a `MemoryBlockStore`: genesis, commits, errors, revisions, and sync v1.1
//! inversion of our own commits using only the blocks they declare relevant.

use std::collections::BTreeMap;

use atp_crypto::{Curve, Keypair};
use atp_data::{Cid, Value};
use atp_repo::{
    BlockStore, CommitData, MemoryBlockStore, Mst, RecordWrite, RepoError, RepoHead, WriteAction,
    apply_commit, create_repo, format_commit, format_commit_on, verify_prev_data,
    verify_record_proof,
};
use atp_syntax::{Did, Nsid, RecordKey, Tid};
use proptest::prelude::*;

fn signer() -> Keypair {
    Keypair::from_private_bytes(Curve::K256, &[7u8; 32]).unwrap()
}

fn did() -> Did {
    "did:plc:44ybard66vv44zksje25o7dz".parse().unwrap()
}

fn clock(micros: u64) -> Tid {
    Tid::from_parts(1_700_000_000_000_000 + micros, 5)
}

fn nsid(s: &str) -> Nsid {
    s.parse().unwrap()
}

fn rkey(s: &str) -> RecordKey {
    s.parse().unwrap()
}

fn post(text: &str) -> Value {
    Value::Map(BTreeMap::from([
        ("$type".to_owned(), Value::from("app.bsky.feed.post")),
        ("text".to_owned(), Value::from(text)),
    ]))
}

fn create(c: &str, k: &str, text: &str) -> RecordWrite {
    RecordWrite::Create {
        collection: nsid(c),
        rkey: rkey(k),
        record: post(text),
    }
}

fn update(c: &str, k: &str, text: &str) -> RecordWrite {
    RecordWrite::Update {
        collection: nsid(c),
        rkey: rkey(k),
        record: post(text),
    }
}

fn delete(c: &str, k: &str) -> RecordWrite {
    RecordWrite::Delete {
        collection: nsid(c),
        rkey: rkey(k),
    }
}

const POST: &str = "app.bsky.feed.post";

async fn genesis(store: &MemoryBlockStore, n: usize) -> RepoHead {
    let records = (0..n)
        .map(|i| {
            (
                nsid(POST),
                rkey(&format!("r{i:04}")),
                post(&format!("post {i}")),
            )
        })
        .collect();
    let (head, commit) = create_repo(store, &did(), records, &signer(), &clock(0))
        .await
        .unwrap();
    assert_eq!(commit.ops.len(), n);
    assert_eq!(commit.since, None);
    head
}

/// Everything a consumer would check on a commit we formatted, using only its relevant blocks.
fn check_commit_alone(commit: &CommitData) {
    let blocks = &commit.relevant_blocks;
    let signed = atp_repo::SignedCommit::from_cbor(&blocks[&commit.cid]).unwrap();
    signed.verify(&signer().public_key()).unwrap();
    assert_eq!(signed.data(), &commit.data);
    for op in &commit.ops {
        let found = verify_record_proof(&commit.data, &op.path, blocks).unwrap();
        assert_eq!(found, op.cid, "{}", op.path);
        if let Some(cid) = op.cid {
            assert!(blocks.contains_key(&cid), "record block of {}", op.path);
        }
    }
    if let Some(prev_data) = &commit.prev_data {
        verify_prev_data(&commit.data, &commit.ops, blocks, prev_data).unwrap();
    }
}

#[tokio::test]
async fn genesis_then_commits() {
    let store = MemoryBlockStore::new();
    let head = genesis(&store, 50).await;
    head.commit.verify(&signer().public_key()).unwrap();
    head.tree().load_all(&store).await.unwrap();

    let writes = [
        create(POST, "new1", "hello"),
        update(POST, "r0003", "edited"),
        delete(POST, "r0010"),
    ];
    let commit = format_commit(&store, Some(&head), &did(), &writes, &signer(), &clock(1))
        .await
        .unwrap();
    assert_eq!(commit.since.as_ref(), head.commit.rev());
    assert_eq!(commit.prev, Some(head.cid));
    assert_eq!(commit.prev_data, Some(*head.commit.data()));
    assert!(&commit.rev > head.commit.rev().unwrap());
    let actions: Vec<_> = commit
        .ops
        .iter()
        .map(|op| (op.action, op.path.as_str(), op.prev.is_some()))
        .collect();
    assert_eq!(
        actions,
        [
            (WriteAction::Create, "app.bsky.feed.post/new1", false),
            (WriteAction::Update, "app.bsky.feed.post/r0003", true),
            (WriteAction::Delete, "app.bsky.feed.post/r0010", true),
        ]
    );
    assert!(commit.removed_cids.contains(&head.cid));
    check_commit_alone(&commit);

    let new_head = apply_commit(&store, &commit).await.unwrap();
    assert_eq!(new_head, RepoHead::load(&store, &commit.cid).await.unwrap());
    for cid in commit.removed_cids.difference(&commit.removed_record_cids) {
        assert!(!store.has_block(cid).await.unwrap(), "{cid} should be gone");
    }
    // Every block the new head reaches is still there.
    let tree = new_head.tree();
    tree.load_all(&store).await.unwrap();
    let leaves = tree.leaves(&store).await.unwrap();
    assert_eq!(leaves.len(), 50);
    for leaf in &leaves {
        assert!(store.has_block(&leaf.value).await.unwrap(), "{}", leaf.key);
    }
    assert_eq!(
        store.blocks_since(head.commit.rev()).len(),
        commit.new_blocks.len()
    );
}

/// Regression: two keys holding byte-identical records share one block. Deleting one key used to
/// list that block in `removed_cids`, and `apply_commit` deleted it, so the repo lost the other
/// key's record (`MissingBlock` on export or verification).
#[tokio::test]
async fn deleting_one_of_two_identical_records_keeps_the_shared_block() {
    let store = MemoryBlockStore::new();
    // Far-apart keys, so the two twins sit in different subtrees of a 500-record tree.
    let head = genesis(&store, 500).await;
    let writes = [create(POST, "aaaa", "same"), create(POST, "zzzz", "same")];
    let commit = format_commit(&store, Some(&head), &did(), &writes, &signer(), &clock(1))
        .await
        .unwrap();
    let head = apply_commit(&store, &commit).await.unwrap();
    let shared = commit.ops[0].cid.unwrap();
    assert_eq!(commit.ops[1].cid, Some(shared));

    let commit = format_commit(
        &store,
        Some(&head),
        &did(),
        &[delete(POST, "aaaa")],
        &signer(),
        &clock(2),
    )
    .await
    .unwrap();
    assert!(commit.removed_record_cids.contains(&shared));
    let head = apply_commit(&store, &commit).await.unwrap();
    assert!(store.has_block(&shared).await.unwrap());
    let summary = atp_repo::verify_repo(&store, &head.cid, Some(&signer().public_key()))
        .await
        .unwrap();
    assert_eq!(summary.records, 501);
}

#[tokio::test]
async fn write_errors() {
    let store = MemoryBlockStore::new();
    let head = genesis(&store, 5).await;
    let attempt = |writes: Vec<RecordWrite>| {
        let (store, head) = (&store, &head);
        async move { format_commit(store, Some(head), &did(), &writes, &signer(), &clock(1)).await }
    };
    let exists = attempt(vec![create(POST, "r0001", "again")]).await;
    assert!(matches!(exists, Err(RepoError::RecordExists { .. })));
    let missing = attempt(vec![update(POST, "nope", "x")]).await;
    assert!(matches!(missing, Err(RepoError::RecordNotFound { .. })));
    let missing = attempt(vec![delete(POST, "nope")]).await;
    assert!(matches!(missing, Err(RepoError::RecordNotFound { .. })));
    let twice = attempt(vec![create(POST, "a", "x"), delete(POST, "a")]).await;
    assert!(matches!(twice, Err(RepoError::DuplicatePath { .. })));
    let not_map = attempt(vec![RecordWrite::Create {
        collection: nsid(POST),
        rkey: rkey("b"),
        record: Value::from(1),
    }])
    .await;
    assert!(matches!(not_map, Err(RepoError::RecordNotMap { .. })));
    let other: Did = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa".parse().unwrap();
    let wrong = format_commit(&store, Some(&head), &other, &[], &signer(), &clock(1)).await;
    assert!(matches!(wrong, Err(RepoError::WrongDid { .. })));
}

#[tokio::test]
async fn revs_increase_even_if_the_clock_goes_back() {
    let store = MemoryBlockStore::new();
    let head = genesis(&store, 1).await;
    let behind = Tid::from_parts(1, 0);
    let commit = format_commit(
        &store,
        Some(&head),
        &did(),
        &[create(POST, "x", "x")],
        &signer(),
        &behind,
    )
    .await
    .unwrap();
    assert_eq!(commit.rev.to_u64(), head.commit.rev().unwrap().to_u64() + 1);
}

#[tokio::test]
async fn identical_update_is_not_an_op() {
    let store = MemoryBlockStore::new();
    let head = genesis(&store, 3).await;
    let commit = format_commit(
        &store,
        Some(&head),
        &did(),
        &[update(POST, "r0001", "post 1")],
        &signer(),
        &clock(1),
    )
    .await
    .unwrap();
    assert!(commit.ops.is_empty());
    assert_eq!(commit.data, *head.commit.data());
    check_commit_alone(&commit);
}

#[tokio::test]
async fn invert_each_op_kind_and_batches() {
    let store = MemoryBlockStore::new();
    let mut head = genesis(&store, 300).await;
    let batches = vec![
        vec![create(POST, "zzz", "last")],
        vec![create(POST, "aaa", "first")],
        vec![update(POST, "r0150", "mid")],
        vec![delete(POST, "r0299")],
        vec![delete(POST, "aaa")],
        vec![
            create("app.bsky.feed.like", "l1", "x"),
            delete(POST, "r0000"),
            update(POST, "r0100", "y"),
        ],
        (0..40)
            .map(|i| delete(POST, &format!("r{:04}", i * 7 + 1)))
            .collect(),
    ];
    for (i, writes) in batches.into_iter().enumerate() {
        let commit = format_commit(
            &store,
            Some(&head),
            &did(),
            &writes,
            &signer(),
            &clock(i as u64 + 1),
        )
        .await
        .unwrap();
        check_commit_alone(&commit);
        head = apply_commit(&store, &commit).await.unwrap();
    }
}

#[derive(Debug, Clone)]
enum Step {
    Create(u16),
    Update(u16),
    Delete(u16),
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u16..400).prop_map(Step::Create),
        (0u16..400).prop_map(Step::Update),
        (0u16..400).prop_map(Step::Delete),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    /// Random batches against random repositories: every commit verifies and inverts from its own
    /// relevant blocks, and the stored tree holds exactly the expected records. Formatting from
    /// the tree kept from the previous commit (`format_commit_on` + `keep_paths`, starting from a
    /// stale tree) gives the very same commits.
    #[test]
    fn random_batches_invert(initial in 0usize..150, batches in prop::collection::vec(prop::collection::vec(arb_step(), 1..12), 1..4)) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let store = MemoryBlockStore::new();
            let mut head = genesis(&store, initial).await;
            let mut kept = Mst::empty();
            let mut expected: BTreeMap<String, Cid> = head.tree().leaves(&store).await.unwrap().into_iter().map(|l| (l.key, l.value)).collect();
            for (b, steps) in batches.iter().enumerate() {
                let mut writes = Vec::new();
                let mut touched = std::collections::BTreeSet::new();
                for step in steps {
                    let (n, kind) = match step { Step::Create(n) => (n, 0), Step::Update(n) => (n, 1), Step::Delete(n) => (n, 2) };
                    let path = format!("{POST}/r{n:04}");
                    if !touched.insert(path.clone()) { continue; }
                    let exists = expected.contains_key(&path);
                    let k = format!("r{n:04}");
                    let text = format!("v{b}");
                    let write = match (kind, exists) {
                        (_, false) => create(POST, &k, &text),
                        (2, true) => delete(POST, &k),
                        _ => update(POST, &k, &text),
                    };
                    match &write {
                        RecordWrite::Delete { .. } => { expected.remove(&path); }
                        _ => {
                            let cid = atp_data::cid::cid_for_cbor(&atp_data::cbor::to_vec(&post(&text)));
                            expected.insert(path, cid);
                        }
                    }
                    writes.push(write);
                }
                let commit = format_commit(&store, Some(&head), &did(), &writes, &signer(), &clock(b as u64 + 1)).await.unwrap();
                check_commit_alone(&commit);
                let (again, tree) = format_commit_on(&store, Some(&head), kept, &did(), &writes, &signer(), &clock(b as u64 + 1)).await.unwrap();
                prop_assert_eq!(&again, &commit);
                let paths: Vec<String> = writes.iter().map(RecordWrite::path).collect();
                let keys: Vec<&str> = paths.iter().map(String::as_str).collect();
                kept = tree.keep_paths(&keys, b % 2 == 0);
                prop_assert_eq!(kept.root_cid(), commit.data);
                head = apply_commit(&store, &commit).await.unwrap();
            }
            let stored: BTreeMap<String, Cid> = Mst::load(*head.commit.data()).leaves(&store).await.unwrap().into_iter().map(|l| (l.key, l.value)).collect();
            prop_assert_eq!(stored, expected);
            Ok(())
        })?;
    }
}

/// The write path's futures must be `Send` so they can run inside server handlers.
#[test]
fn futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let store = MemoryBlockStore::new();
    let tree = Mst::empty();
    assert_send(&tree.insert(
        &store,
        "app.bsky.feed.post/a",
        atp_data::cid::cid_for_cbor(b"\xa0"),
    ));
    assert_send(&tree.delete(&store, "app.bsky.feed.post/a"));
    assert_send(&Mst::diff(&store, &tree, &tree));
    let writes = [create(POST, "a", "x")];
    let key = signer();
    let clock = clock(0);
    let did = did();
    assert_send(&format_commit(&store, None, &did, &writes, &key, &clock));
    assert_send(&atp_repo::covering_proof(
        &tree,
        &store,
        "app.bsky.feed.post/a",
    ));
}
