//! MST behaviour on a `MemoryBlockStore`: round trips, lazy loading, listing, diffs, and
//! order-independence of the root.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};

use atp_data::Cid;
use atp_repo::mst::{LeafEntry, WalkItem};
use atp_repo::{BlockMap, BlockStore, FoundBlocks, MemoryBlockStore, Mst, MstError, StoreError};
use atp_syntax::Tid;
use proptest::prelude::*;

fn value(n: u64) -> Cid {
    atp_data::cid::cid_for_cbor(&atp_data::cbor::to_vec(&atp_data::Value::Integer(n as i64)))
}

fn key(collection: &str, n: usize) -> String {
    format!("{collection}/r{n:05}")
}

fn rev() -> Tid {
    "3jzfcijpj2z2a".parse().unwrap()
}

fn node_blocks(tree: &Mst) -> BlockMap {
    tree.walk_loaded()
        .filter_map(|item| match item.unwrap() {
            WalkItem::Node { cid, bytes } => Some((cid, bytes)),
            WalkItem::Leaf(_) => None,
        })
        .collect()
}

/// A store that counts how many blocks were read.
#[derive(Default)]
struct CountingStore {
    inner: MemoryBlockStore,
    reads: AtomicUsize,
}

impl BlockStore for CountingStore {
    async fn get_block(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.get_block(cid).await
    }
    async fn has_block(&self, cid: &Cid) -> Result<bool, StoreError> {
        self.inner.has_block(cid).await
    }
    async fn get_blocks(&self, cids: &[Cid]) -> Result<FoundBlocks, StoreError> {
        self.reads.fetch_add(cids.len(), Ordering::Relaxed);
        self.inner.get_blocks(cids).await
    }
    async fn put_blocks(&self, blocks: &BlockMap, rev: &Tid) -> Result<(), StoreError> {
        self.inner.put_blocks(blocks, rev).await
    }
    async fn delete_blocks(&self, cids: &[Cid]) -> Result<(), StoreError> {
        self.inner.delete_blocks(cids).await
    }
}

async fn stored(entries: &[(String, Cid)]) -> (Mst, CountingStore) {
    let tree = Mst::from_entries(entries.iter().cloned()).unwrap();
    let store = CountingStore::default();
    store.put_blocks(&node_blocks(&tree), &rev()).await.unwrap();
    (Mst::load(tree.root_cid()), store)
}

#[tokio::test]
async fn insert_get_delete_round_trip() {
    let store = MemoryBlockStore::new();
    let mut tree = Mst::empty();
    let empty_root = tree.root_cid();
    for i in 0..500 {
        let (next, prev) = tree
            .insert(&store, &key("com.example.a", i), value(i as u64))
            .await
            .unwrap();
        assert_eq!(prev, None);
        tree = next;
    }
    let (updated, prev) = tree
        .insert(&store, &key("com.example.a", 7), value(1000))
        .await
        .unwrap();
    assert_eq!(prev, Some(value(7)));
    assert_eq!(
        updated.get(&store, &key("com.example.a", 7)).await.unwrap(),
        Some(value(1000))
    );
    let (same, prev) = updated
        .insert(&store, &key("com.example.a", 7), value(1000))
        .await
        .unwrap();
    assert_eq!(
        (same.root_cid(), prev),
        (updated.root_cid(), Some(value(1000)))
    );

    for i in 0..500 {
        assert_eq!(
            tree.get(&store, &key("com.example.a", i)).await.unwrap(),
            Some(value(i as u64))
        );
    }
    assert_eq!(
        tree.get(&store, "com.example.a/missing").await.unwrap(),
        None
    );
    let (unchanged, prev) = tree.delete(&store, "com.example.a/missing").await.unwrap();
    assert_eq!((unchanged.root_cid(), prev), (tree.root_cid(), None));

    for i in 0..500 {
        let (next, prev) = tree.delete(&store, &key("com.example.a", i)).await.unwrap();
        assert_eq!(prev, Some(value(i as u64)));
        tree = next;
    }
    assert_eq!(tree.root_cid(), empty_root);
    assert!(matches!(
        tree.insert(&store, "not a key", value(0)).await,
        Err(MstError::InvalidKey { .. })
    ));
}

#[tokio::test]
async fn lazy_tree_matches_memory_tree() {
    let entries: Vec<(String, Cid)> = (0..2000)
        .map(|i| (key("com.example.a", i), value(i as u64)))
        .collect();
    let (tree, store) = stored(&entries).await;
    assert_eq!(tree.root_height(), None);
    assert_eq!(
        tree.get(&store, &key("com.example.a", 1234)).await.unwrap(),
        Some(value(1234))
    );
    let reads = store.reads.load(Ordering::Relaxed);
    assert!(reads <= 8, "a point lookup reads one path, read {reads}");
    let all = tree.leaves(&store).await.unwrap();
    let expected: Vec<LeafEntry> = entries
        .iter()
        .map(|(k, v)| LeafEntry {
            key: k.clone(),
            value: *v,
        })
        .collect();
    assert_eq!(all, expected);
    // Missing blocks are reported, not panicked on.
    let partial = MemoryBlockStore::new();
    let lost = Mst::load(tree.root_cid());
    assert!(matches!(
        lost.leaves(&partial).await,
        Err(MstError::MissingBlocks { .. })
    ));
}

#[tokio::test]
async fn list_collection_ranges() {
    let mut entries = Vec::new();
    for (c, n) in [
        ("com.example.a", 30),
        ("com.example.b", 40),
        ("com.example.bb", 5),
    ] {
        entries.extend((0..n).map(|i| (key(c, i), value(i as u64))));
    }
    let (tree, store) = stored(&entries).await;
    let b: atp_syntax::Nsid = "com.example.b".parse().unwrap();
    let keys = |v: Vec<LeafEntry>| v.into_iter().map(|e| e.key).collect::<Vec<_>>();

    let all_b = keys(
        tree.list_collection(&store, &b, None, 100, false)
            .await
            .unwrap(),
    );
    assert_eq!(
        all_b,
        (0..40).map(|i| key("com.example.b", i)).collect::<Vec<_>>()
    );
    let page = keys(
        tree.list_collection(&store, &b, Some("r00010"), 5, false)
            .await
            .unwrap(),
    );
    assert_eq!(
        page,
        (11..16)
            .map(|i| key("com.example.b", i))
            .collect::<Vec<_>>()
    );
    let back = keys(
        tree.list_collection(&store, &b, Some("r00010"), 3, true)
            .await
            .unwrap(),
    );
    assert_eq!(
        back,
        vec![
            key("com.example.b", 9),
            key("com.example.b", 8),
            key("com.example.b", 7)
        ]
    );
    let last = keys(
        tree.list_collection(&store, &b, None, 2, true)
            .await
            .unwrap(),
    );
    assert_eq!(
        last,
        vec![key("com.example.b", 39), key("com.example.b", 38)]
    );
    let none: atp_syntax::Nsid = "com.example.c".parse().unwrap();
    assert!(
        tree.list_collection(&store, &none, None, 10, false)
            .await
            .unwrap()
            .is_empty()
    );

    let incl = keys(
        tree.list(
            &store,
            Bound::Included(&key("com.example.a", 28)),
            Bound::Included(&key("com.example.b", 1)),
            10,
            false,
        )
        .await
        .unwrap(),
    );
    assert_eq!(
        incl,
        vec![
            key("com.example.a", 28),
            key("com.example.a", 29),
            key("com.example.b", 0),
            key("com.example.b", 1)
        ]
    );
}

/// Applies a diff's changes to `old`, which must give `new`.
async fn apply_changes(store: &impl BlockStore, old: &Mst, diff: &atp_repo::MstDiff) -> Mst {
    let mut tree = old.clone();
    for change in &diff.changes {
        tree = match change.new {
            Some(v) => tree.insert(store, &change.key, v).await.unwrap().0,
            None => tree.delete(store, &change.key).await.unwrap().0,
        };
    }
    tree
}

#[tokio::test]
async fn diff_is_proportional_and_complete() {
    let entries: Vec<(String, Cid)> = (0..5000)
        .map(|i| (key("com.example.a", i), value(i as u64)))
        .collect();
    let (old, store) = stored(&entries).await;
    let (new, _) = old
        .insert(&store, "com.example.a/new", value(1))
        .await
        .unwrap();
    let (new, _) = new.delete(&store, &key("com.example.a", 42)).await.unwrap();
    let (new, _) = new
        .insert(&store, &key("com.example.a", 99), value(7))
        .await
        .unwrap();
    store.reads.store(0, Ordering::Relaxed);
    let diff = Mst::diff(&store, &Mst::load(old.root_cid()), &new)
        .await
        .unwrap();
    let reads = store.reads.load(Ordering::Relaxed);
    assert!(reads < 60, "diff read {reads} blocks");
    assert!(
        diff.new_nodes.len() < 30,
        "{} new nodes",
        diff.new_nodes.len()
    );
    let changes: Vec<_> = diff
        .changes
        .iter()
        .map(|c| (c.key.as_str(), c.old, c.new))
        .collect();
    assert_eq!(
        changes,
        vec![
            ("com.example.a/new", None, Some(value(1))),
            (key("com.example.a", 42).as_str(), Some(value(42)), None),
            (
                key("com.example.a", 99).as_str(),
                Some(value(99)),
                Some(value(7))
            ),
        ]
    );
    assert_eq!(diff.new_leaf_cids, BTreeSet::from([value(1), value(7)]));
    assert!(
        diff.removed_leaf_cids.contains(&value(42)) && diff.removed_leaf_cids.contains(&value(99))
    );
    assert_eq!(
        apply_changes(&store, &old, &diff).await.root_cid(),
        new.root_cid()
    );
}

fn arb_keys() -> impl Strategy<Value = Vec<String>> {
    let collection = prop::sample::select(vec![
        "app.bsky.feed.post",
        "app.bsky.feed.like",
        "com.example.x",
    ]);
    prop::collection::btree_set(
        (collection, "[a-z2-7]{1,13}").prop_map(|(c, r)| format!("{c}/{r}")),
        0..120,
    )
    .prop_map(|set| set.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn root_is_independent_of_order(keys in arb_keys(), seed in any::<u64>(), cut in 0usize..120) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let store = MemoryBlockStore::new();
            let entries: Vec<(String, Cid)> = keys.iter().enumerate().map(|(i, k)| (k.clone(), value(i as u64))).collect();
            let bulk = Mst::from_entries(entries.clone()).unwrap();
            let mut shuffled = entries.clone();
            // A cheap deterministic shuffle from the seed.
            let mut state = seed | 1;
            for i in (1..shuffled.len()).rev() {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                shuffled.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let mut tree = Mst::empty();
            for (k, v) in &shuffled {
                tree = tree.insert(&store, k, *v).await.unwrap().0;
            }
            prop_assert_eq!(tree.root_cid(), bulk.root_cid());
            prop_assert_eq!(node_blocks(&tree), node_blocks(&bulk));

            // In-place inserts on a handle sharing nodes with `snapshot` give the same tree and
            // leave the snapshot alone.
            let half = shuffled.len() / 2;
            let mut in_place = Mst::from_entries(shuffled[..half].iter().cloned()).unwrap();
            let snapshot = in_place.clone();
            let snapshot_root = Mst::from_entries(shuffled[..half].iter().cloned()).unwrap().root_cid();
            for (k, v) in &shuffled[half..] {
                prop_assert_eq!(in_place.insert_mut(&store, k, *v).await.unwrap(), None);
            }
            prop_assert_eq!(in_place.root_cid(), bulk.root_cid());
            prop_assert_eq!(snapshot.root_cid(), snapshot_root);
            prop_assert_eq!(node_blocks(&snapshot), node_blocks(&Mst::from_entries(shuffled[..half].iter().cloned()).unwrap()));

            // Deleting a prefix of the shuffled order gives the bulk tree of the rest.
            let cut = cut.min(shuffled.len());
            for (k, _) in &shuffled[..cut] {
                tree = tree.delete(&store, k).await.unwrap().0;
            }
            let rest = Mst::from_entries(shuffled[cut..].iter().cloned()).unwrap();
            prop_assert_eq!(tree.root_cid(), rest.root_cid());

            // diff(bulk, rest) applied to bulk gives rest, and lists exactly the removed keys.
            let diff = Mst::diff(&store, &bulk, &rest).await.unwrap();
            let removed: BTreeMap<&str, Cid> = shuffled[..cut].iter().map(|(k, v)| (k.as_str(), *v)).collect();
            prop_assert_eq!(diff.changes.len(), removed.len());
            for change in &diff.changes {
                prop_assert_eq!(removed.get(change.key.as_str()).copied(), change.old);
                prop_assert_eq!(change.new, None);
            }
            let all_old = node_blocks(&bulk);
            let all_new = node_blocks(&rest);
            let expected_new: BTreeSet<Cid> = all_new.keys().filter(|c| !all_old.contains_key(c)).copied().collect();
            let expected_removed: BTreeSet<Cid> = all_old.keys().filter(|c| !all_new.contains_key(c)).copied().collect();
            prop_assert_eq!(diff.new_nodes.keys().copied().collect::<BTreeSet<_>>(), expected_new);
            prop_assert_eq!(&diff.removed_nodes, &expected_removed);
            prop_assert_eq!(apply_changes(&store, &bulk, &diff).await.root_cid(), rest.root_cid());
            Ok(())
        })?;
    }
}
