//! Proofs: the MST blocks that show what a tree holds at a key.
//!
//! - A **record proof** is the nodes on the path from the root to where the key is (inclusion) or
//!   would be (absence), in the latter case down to the bottom layer (inserting the key would split
//!   those nodes). It proves the key's value, or its absence, against the root CID.
//! - A **covering proof** adds, when the key is present, the facing edges of the two gaps beside
//!   it (the rightmost spine of the left gap and the leftmost spine of the right gap). Those are
//!   what removing the key touches, so a covering proof over the new tree lets a consumer invert
//!   any operation on the key ([`crate::invert`]). This matches the reference implementation's
//!   `getCoveringProof` (its neighbour proofs add nothing else).

use atp_data::Cid;

use crate::blockstore::{BlockMap, BlockStore};
use crate::mst::load::drive;
use crate::mst::node::{OpError, Subtree};
use crate::mst::{Mst, MstError};

/// The nodes on `key`'s path in `tree`, root first in a map.
pub async fn record_proof<S: BlockStore>(
    tree: &Mst,
    store: &S,
    key: &str,
) -> Result<BlockMap, MstError> {
    drive(store, || try_proof(tree, key, false)).await
}

/// The covering proof of `key` in `tree` (see the module docs).
pub async fn covering_proof<S: BlockStore>(
    tree: &Mst,
    store: &S,
    key: &str,
) -> Result<BlockMap, MstError> {
    drive(store, || try_proof(tree, key, true)).await
}

/// Checks a record proof: walks from `root` using only `blocks`. Returns the key's value
/// (inclusion) or `None` (proven absence). A block the walk needs that is absent from `blocks` is
/// [`MstError::MissingBlocks`]: the proof is incomplete.
pub fn verify_record_proof(
    root: &Cid,
    key: &str,
    blocks: &BlockMap,
) -> Result<Option<Cid>, MstError> {
    Mst::load(*root).get_from(blocks, key)
}

/// Adds the covering proof of `key` in `tree` to `out`, encoding only the nodes neither in `out`
/// nor in `known` (blocks already encoded, e.g. a diff's new nodes): a commit's proofs share most
/// of their nodes.
pub(crate) async fn covering_proof_into<S: BlockStore>(
    tree: &Mst,
    store: &S,
    key: &str,
    known: &BlockMap,
    out: &mut BlockMap,
) -> Result<(), MstError> {
    let have: &BlockMap = out;
    let found = drive(store, || {
        try_proof_with(tree, key, true, &|cid: &Cid| {
            if have.contains_key(cid) {
                Some(None)
            } else {
                known.get(cid).map(|bytes| Some(bytes.clone()))
            }
        })
    })
    .await?;
    out.extend(found);
    Ok(())
}

fn try_proof(tree: &Mst, key: &str, covering: bool) -> Result<BlockMap, OpError> {
    try_proof_with(tree, key, covering, &|_| None)
}

/// What a proof walk does with a node: `None`: encode it; `Some(None)`: leave it out (already
/// there); `Some(Some(bytes))`: use these bytes.
type Known<'a> = dyn Fn(&Cid) -> Option<Option<Vec<u8>>> + Sync + 'a;

fn add(node: &crate::mst::node::Node, known: &Known<'_>, out: &mut BlockMap) {
    let cid = node.cid();
    match known(&cid) {
        Some(None) => {}
        Some(Some(bytes)) => {
            out.insert(cid, bytes);
        }
        None => {
            out.insert(cid, node.to_cbor());
        }
    }
}

fn try_proof_with(
    tree: &Mst,
    key: &str,
    covering: bool,
    known: &Known<'_>,
) -> Result<BlockMap, OpError> {
    let mut out = BlockMap::new();
    let mut sub = tree.root_subtree().clone();
    let mut height = None;
    loop {
        let node = sub.node(height)?.clone();
        add(&node, known, &mut out);
        let child = node.height.checked_sub(1);
        match node.search(key) {
            Ok(i) => {
                if covering {
                    spine(node.subtrees[i].as_ref(), child, true, known, &mut out)?;
                    spine(node.subtrees[i + 1].as_ref(), child, false, known, &mut out)?;
                }
                return Ok(out);
            }
            // Below the key's own height the key cannot be present, but inserting it would split
            // this gap's subtree along the same path, down to the bottom: keep going.
            Err(i) => match &node.subtrees[i] {
                None => return Ok(out),
                Some(next) => {
                    sub = next.clone();
                    height = child;
                }
            },
        }
    }
}

/// Adds the rightmost (`rightmost`) or leftmost spine of a subtree to `out`.
fn spine(
    sub: Option<&Subtree>,
    height: Option<u8>,
    rightmost: bool,
    known: &Known<'_>,
    out: &mut BlockMap,
) -> Result<(), OpError> {
    let mut current = sub.cloned();
    let mut height = height;
    while let Some(sub) = current {
        let node = sub.node(height)?.clone();
        add(&node, known, out);
        let edge = if rightmost {
            node.subtrees.last()
        } else {
            node.subtrees.first()
        };
        current = edge.cloned().flatten();
        height = node.height.checked_sub(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blockstore::MemoryBlockStore;
    use crate::mst::WalkItem;

    fn leaf() -> Cid {
        atp_data::cid::cid_for_cbor(b"\xa0")
    }

    fn tree_with(n: usize) -> (Mst, BlockMap) {
        let entries = (0..n).map(|i| (format!("com.example.record/k{i:04}"), leaf()));
        let tree = Mst::from_entries(entries).unwrap();
        let mut blocks = BlockMap::new();
        for item in tree.walk_loaded() {
            if let WalkItem::Node { cid, bytes } = item.unwrap() {
                blocks.insert(cid, bytes);
            }
        }
        (tree, blocks)
    }

    #[tokio::test]
    async fn inclusion_and_absence() {
        let (tree, blocks) = tree_with(300);
        let store = MemoryBlockStore::from_blocks(blocks.clone());
        let stored = Mst::load(tree.root_cid());
        for key in ["com.example.record/k0007", "com.example.record/k0299"] {
            let proof = record_proof(&stored, &store, key).await.unwrap();
            assert!(proof.len() < blocks.len());
            assert_eq!(
                verify_record_proof(&tree.root_cid(), key, &proof).unwrap(),
                Some(leaf())
            );
        }
        for key in [
            "com.example.record/k0007x",
            "com.example.record/a",
            "com.example.record/z",
        ] {
            let proof = record_proof(&stored, &store, key).await.unwrap();
            assert_eq!(
                verify_record_proof(&tree.root_cid(), key, &proof).unwrap(),
                None
            );
        }
        // A proof for one key does not prove another key's absence far away.
        let proof = record_proof(&stored, &store, "com.example.record/k0000")
            .await
            .unwrap();
        let far = verify_record_proof(&tree.root_cid(), "com.example.record/k0299", &proof);
        assert!(matches!(far, Err(MstError::MissingBlocks { .. })));
    }

    #[tokio::test]
    async fn covering_proof_contains_record_proof() {
        let (tree, blocks) = tree_with(300);
        let store = MemoryBlockStore::from_blocks(blocks);
        let key = "com.example.record/k0150";
        let path = record_proof(&tree, &store, key).await.unwrap();
        let covering = covering_proof(&tree, &store, key).await.unwrap();
        assert!(path.keys().all(|c| covering.contains_key(c)));
        // Deleting the key using only the covering proof works.
        let (after, prev) = Mst::load(tree.root_cid())
            .delete_from(&covering, key)
            .unwrap();
        assert_eq!(prev, Some(leaf()));
        let (expected, _) = tree.delete(&store, key).await.unwrap();
        assert_eq!(after.root_cid(), expected.root_cid());
    }
}
