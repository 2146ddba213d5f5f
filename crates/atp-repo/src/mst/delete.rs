//! Removing a key.

use std::sync::Arc;

use atp_data::Cid;

use super::load::{drive, drive_sync};
use super::node::{Node, OpError, Subtree};
use super::{Mst, MstError, child_height, height_for_key};
use crate::blockstore::{BlockMap, BlockStore};

impl Mst {
    /// Removes `key`, returning the new tree and the removed value (`None`, and the same tree, if
    /// the key was absent).
    pub async fn delete<S: BlockStore>(
        &self,
        store: &S,
        key: &str,
    ) -> Result<(Mst, Option<Cid>), MstError> {
        drive(store, || self.try_delete(key)).await
    }

    /// Like [`delete`](Self::delete), loading nodes from a block map.
    pub fn delete_from(
        &self,
        blocks: &BlockMap,
        key: &str,
    ) -> Result<(Mst, Option<Cid>), MstError> {
        drive_sync(blocks, || self.try_delete(key))
    }

    pub(crate) fn try_delete(&self, key: &str) -> Result<(Mst, Option<Cid>), OpError> {
        let root = self.root.node(None)?;
        let key_height = height_for_key(key.as_bytes());
        if key_height > root.height {
            return Ok((self.clone(), None));
        }
        match delete_in(&self.root, root.height, key, key_height)? {
            None => Ok((self.clone(), None)),
            Some((sub, prev)) => Ok((Mst::from_root(sub)?, Some(prev))),
        }
    }
}

/// Removes `key` from the subtree `sub` (a node at `height`). `None` if the key is absent;
/// otherwise the new subtree (absent if it became empty) and the removed value.
fn delete_in(
    sub: &Subtree,
    height: u8,
    key: &str,
    key_height: u8,
) -> Result<Option<(Option<Subtree>, Cid)>, OpError> {
    let node = sub.node(Some(height))?;
    match node.search(key) {
        Ok(i) => {
            let merged = merge(
                node.subtrees[i].as_ref(),
                node.subtrees[i + 1].as_ref(),
                height,
            )?;
            let mut leaves = node.leaves.to_vec();
            let removed = leaves.remove(i);
            let mut subtrees = Vec::with_capacity(node.subtrees.len() - 1);
            subtrees.extend_from_slice(&node.subtrees[..i]);
            subtrees.push(merged);
            subtrees.extend_from_slice(&node.subtrees[i + 2..]);
            Ok(Some((
                Node::new(height, leaves, subtrees).into_subtree(),
                removed.value,
            )))
        }
        Err(_) if height <= key_height => Ok(None),
        Err(i) => {
            let Some(child) = &node.subtrees[i] else {
                return Ok(None);
            };
            let Some((new_child, prev)) = delete_in(child, child_height(height)?, key, key_height)?
            else {
                return Ok(None);
            };
            let mut subtrees = node.subtrees.clone();
            subtrees[i] = new_child;
            Ok(Some((node.with_subtrees(subtrees).into_subtree(), prev)))
        }
    }
}

/// Joins two adjacent gaps of a node at `parent_height` (every key of `left` is below every key
/// of `right`) into one subtree, merging their facing edges recursively.
pub(crate) fn merge(
    left: Option<&Subtree>,
    right: Option<&Subtree>,
    parent_height: u8,
) -> Result<Option<Subtree>, OpError> {
    let (left, right) = match (left, right) {
        (None, other) | (other, None) => return Ok(other.cloned()),
        (Some(l), Some(r)) => (l, r),
    };
    let height = child_height(parent_height)?;
    let l = left.node(Some(height))?;
    let r = right.node(Some(height))?;
    let middle = merge(
        l.subtrees.last().and_then(Option::as_ref),
        r.subtrees.first().and_then(Option::as_ref),
        height,
    )?;
    let mut leaves = Vec::with_capacity(l.leaves.len() + r.leaves.len());
    leaves.extend_from_slice(&l.leaves);
    leaves.extend_from_slice(&r.leaves);
    let mut subtrees = Vec::with_capacity(l.subtrees.len() + r.subtrees.len() - 1);
    subtrees.extend_from_slice(&l.subtrees[..l.subtrees.len() - 1]);
    subtrees.push(middle);
    subtrees.extend_from_slice(&r.subtrees[1..]);
    Ok(Some(Subtree::Loaded(Arc::new(Node::new(
        height, leaves, subtrees,
    )))))
}
