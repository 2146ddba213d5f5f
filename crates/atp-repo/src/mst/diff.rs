//! Differences between two trees, in time proportional to the change.
//!
//! A node's CID fixes its whole subtree and its height, and a node appears at most once in a tree.
//! So the nodes present in only one of two trees form a connected region at the top of each, and
//! a node present in both hangs, in each tree, below a one-sided node (or is a root). The walk goes
//! layer by layer from the top, opening only nodes whose CID is not on the other tree's frontier at
//! the same height; shared subtrees are never opened.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use atp_data::Cid;

use super::load::{drive, drive_sync};
use super::node::{OpError, Subtree};
use super::{Mst, MstError, child_height};
use crate::blockstore::{BlockMap, BlockStore};

/// One key whose value differs between the two trees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafChange {
    /// The repo path.
    pub key: String,
    /// The value in the old tree (`None`: created).
    pub old: Option<Cid>,
    /// The value in the new tree (`None`: deleted).
    pub new: Option<Cid>,
}

/// What changed from one tree to another.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MstDiff {
    /// Changed keys, in key order.
    pub changes: Vec<LeafChange>,
    /// MST nodes of the new tree that the old tree lacks, with their bytes.
    pub new_nodes: BlockMap,
    /// MST nodes of the old tree that the new tree lacks.
    pub removed_nodes: BTreeSet<Cid>,
    /// Record CIDs referenced by changed keys in the new tree and by no changed key in the old.
    pub new_leaf_cids: BTreeSet<Cid>,
    /// Record CIDs referenced by changed keys in the old tree and by no changed key in the new.
    /// Identical records under other, unchanged keys may still reference them: a store that
    /// deletes these blocks must check for that (or keep them).
    pub removed_leaf_cids: BTreeSet<Cid>,
}

impl Mst {
    /// The difference from `old` to `new`.
    pub async fn diff<S: BlockStore>(store: &S, old: &Mst, new: &Mst) -> Result<MstDiff, MstError> {
        drive(store, || try_diff(old, new)).await
    }

    /// Like [`diff`](Self::diff), loading nodes from a block map.
    pub fn diff_from(blocks: &BlockMap, old: &Mst, new: &Mst) -> Result<MstDiff, MstError> {
        drive_sync(blocks, || try_diff(old, new))
    }
}

/// The one-sided frontier of each tree at one height.
#[derive(Default)]
struct Level {
    new: Vec<Subtree>,
    old: Vec<Subtree>,
}

#[derive(Default)]
struct Side {
    nodes: BlockMap,
    leaves: BTreeMap<Arc<str>, Cid>,
}

fn try_diff(old: &Mst, new: &Mst) -> Result<MstDiff, OpError> {
    if old.root_cid() == new.root_cid() {
        return Ok(MstDiff::default());
    }
    let old_root = old.root.try_node(None);
    let new_root = new.root.try_node(None);
    let (old_root, new_root) = match (old_root, new_root) {
        (Ok(o), Ok(n)) => (o, n),
        (o, n) => return Err(OpError::Need(o.err().into_iter().chain(n.err()).collect())),
    };
    let mut levels: BTreeMap<u8, Level> = BTreeMap::new();
    levels
        .entry(new_root.height)
        .or_default()
        .new
        .push(new.root.clone());
    levels
        .entry(old_root.height)
        .or_default()
        .old
        .push(old.root.clone());
    let (mut new_side, mut old_side) = (Side::default(), Side::default());
    while let Some((height, level)) = levels.pop_last() {
        let new_cids: HashSet<Cid> = level.new.iter().map(Subtree::cid).collect();
        let old_cids: HashSet<Cid> = level.old.iter().map(Subtree::cid).collect();
        let mut pending = Vec::new();
        let mut below = Level::default();
        for (subs, other, side, next) in [
            (&level.new, &old_cids, &mut new_side, &mut below.new),
            (&level.old, &new_cids, &mut old_side, &mut below.old),
        ] {
            for sub in subs.iter().filter(|s| !other.contains(&s.cid())) {
                match sub.try_node(Some(height)) {
                    Err(p) => pending.push(p),
                    Ok(node) => {
                        side.nodes.insert(node.cid(), node.to_cbor());
                        for leaf in node.leaves.iter() {
                            side.leaves.insert(leaf.key.clone(), leaf.value);
                        }
                        let children: Vec<Subtree> =
                            node.subtrees.iter().flatten().cloned().collect();
                        if !children.is_empty() {
                            child_height(height)?;
                        }
                        next.extend(children);
                    }
                }
            }
        }
        if !pending.is_empty() {
            return Err(OpError::Need(pending));
        }
        if let Some(h) = height.checked_sub(1)
            && (!below.new.is_empty() || !below.old.is_empty())
        {
            // The lower root of two trees of different heights may already wait there.
            let level = levels.entry(h).or_default();
            level.new.extend(below.new);
            level.old.extend(below.old);
        }
    }
    Ok(finish(new_side, old_side))
}

fn finish(new_side: Side, old_side: Side) -> MstDiff {
    let mut changes = Vec::new();
    let keys: BTreeSet<&Arc<str>> = new_side
        .leaves
        .keys()
        .chain(old_side.leaves.keys())
        .collect();
    for key in keys {
        let (old, new) = (
            old_side.leaves.get(key).copied(),
            new_side.leaves.get(key).copied(),
        );
        if old != new {
            changes.push(LeafChange {
                key: key.to_string(),
                old,
                new,
            });
        }
    }
    let new_values: BTreeSet<Cid> = new_side.leaves.values().copied().collect();
    let old_values: BTreeSet<Cid> = old_side.leaves.values().copied().collect();
    MstDiff {
        changes,
        removed_nodes: old_side
            .nodes
            .keys()
            .filter(|c| !new_side.nodes.contains_key(c))
            .copied()
            .collect(),
        new_nodes: new_side
            .nodes
            .into_iter()
            .filter(|(c, _)| !old_side.nodes.contains_key(c))
            .collect(),
        new_leaf_cids: new_values.difference(&old_values).copied().collect(),
        removed_leaf_cids: old_values.difference(&new_values).copied().collect(),
    }
}
