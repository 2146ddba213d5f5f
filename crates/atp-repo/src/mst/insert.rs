//! Inserting (or replacing) a key.
//!
//! An insert touches only the key's search path: the nodes from the root down to where the key
//! is, or, for a new key, down to the bottom layer (the gap the key lands in is split along the
//! same path). So it runs in two phases: a read-only walk that makes sure the whole path is loaded
//! (asking for blocks if not), then the change itself, which cannot need blocks. The change is
//! copy-on-write ([`Subtree::make_mut`]): nodes shared with another tree are copied, nodes only
//! this tree holds are changed in place. [`Mst::insert`] therefore leaves `self` untouched, and
//! [`Mst::insert_mut`] on a tree nobody shares does no copying at all.

use std::sync::Arc;

use atp_data::Cid;

use super::load::{drive, drive_sync};
use super::node::{Leaf, Node, OpError, Subtree};
use super::{Mst, MstError, height_for_key, validate_key};
use crate::blockstore::{BlockMap, BlockStore};

impl Mst {
    /// Sets `key` to `value`, returning the new tree and the key's previous value (`None` if the
    /// key was absent). The key must be a valid repo path (see [`validate_key`]).
    pub async fn insert<S: BlockStore>(
        &self,
        store: &S,
        key: &str,
        value: Cid,
    ) -> Result<(Mst, Option<Cid>), MstError> {
        validate_key(key)?;
        drive(store, || self.try_insert(key, value)).await
    }

    /// Like [`insert`](Self::insert), loading nodes from a block map.
    pub fn insert_from(
        &self,
        blocks: &BlockMap,
        key: &str,
        value: Cid,
    ) -> Result<(Mst, Option<Cid>), MstError> {
        validate_key(key)?;
        drive_sync(blocks, || self.try_insert(key, value))
    }

    /// Like [`insert`](Self::insert), changing this tree in place: the fast way to apply many
    /// inserts to a tree that no other handle shares (shared nodes are still copied, never
    /// changed). Missing blocks are found before anything changes, so they leave the tree as it was.
    pub async fn insert_mut<S: BlockStore>(
        &mut self,
        store: &S,
        key: &str,
        value: Cid,
    ) -> Result<Option<Cid>, MstError> {
        validate_key(key)?;
        drive(store, || self.try_load_path(key)).await?;
        self.insert_loaded(key, value)
    }

    pub(crate) fn try_insert(&self, key: &str, value: Cid) -> Result<(Mst, Option<Cid>), OpError> {
        self.try_load_path(key)?;
        let mut tree = self.clone();
        let prev = tree.insert_loaded(key, value)?;
        if prev == Some(value) {
            // Same value: keep the original nodes (and their cached CIDs).
            return Ok((self.clone(), prev));
        }
        Ok((tree, prev))
    }

    /// Checks that every node on `key`'s search path is loaded.
    fn try_load_path(&self, key: &str) -> Result<(), OpError> {
        let mut node = self.root.node(None)?;
        loop {
            let next = match node.search(key) {
                Ok(_) => None,
                Err(i) => node.subtrees[i].as_ref(),
            };
            let Some(next) = next else {
                return Ok(());
            };
            node = next.node(node.height.checked_sub(1))?;
        }
    }

    /// The insert itself, on a tree whose search path for `key` is loaded.
    fn insert_loaded(&mut self, key: &str, value: Cid) -> Result<Option<Cid>, MstError> {
        let key_height = height_for_key(key.as_bytes());
        let root = self.root.make_mut()?;
        if root.is_empty() {
            self.root = Subtree::Loaded(Arc::new(new_path(key_height, key_height, key, value)));
            return Ok(None);
        }
        // A key above the root: add parent layers, each a single link to the one below.
        let mut height = root.height;
        while height < key_height {
            let below = self.root.clone();
            self.root = Subtree::Loaded(Arc::new(Node::new(
                height + 1,
                Vec::new(),
                vec![Some(below)],
            )));
            height += 1;
        }
        insert_at(&mut self.root, height, key, key_height, value)
    }
}

/// A new subtree at `height` holding only `key`: a leaf node at the key's height, under a chain of
/// single-link nodes if `height` is above it.
fn new_path(height: u8, key_height: u8, key: &str, value: Cid) -> Node {
    let mut node = Node::new(
        key_height,
        vec![Leaf {
            key: key.into(),
            value,
        }],
        vec![None, None],
    );
    for h in key_height..height {
        node = Node::new(
            h + 1,
            Vec::new(),
            vec![Some(Subtree::Loaded(Arc::new(node)))],
        );
    }
    node
}

/// Inserts into the subtree `sub`, a node at `height` at or above the key's height.
fn insert_at(
    sub: &mut Subtree,
    height: u8,
    key: &str,
    key_height: u8,
    value: Cid,
) -> Result<Option<Cid>, MstError> {
    let node = sub.make_mut()?;
    match node.search(key) {
        Ok(i) => {
            let leaf = &mut Arc::make_mut(&mut node.leaves)[i];
            let prev = leaf.value;
            leaf.value = value;
            Ok(Some(prev))
        }
        Err(i) if height <= key_height => {
            let gap = node.subtrees[i].take();
            let (low, high) = split(gap, height.saturating_sub(1), key)?;
            Arc::make_mut(&mut node.leaves).insert(
                i,
                Leaf {
                    key: key.into(),
                    value,
                },
            );
            node.subtrees[i] = low;
            node.subtrees.insert(i + 1, high);
            Ok(None)
        }
        Err(i) => {
            let child_height = height - 1;
            match &mut node.subtrees[i] {
                Some(child) => insert_at(child, child_height, key, key_height, value),
                gap @ None => {
                    let path = new_path(child_height, key_height, key, value);
                    *gap = Some(Subtree::Loaded(Arc::new(path)));
                    Ok(None)
                }
            }
        }
    }
}

/// Splits the subtree `sub` (a node at `height`, or nothing) into the parts below and above
/// `key`, which must not be in it.
fn split(
    sub: Option<Subtree>,
    height: u8,
    key: &str,
) -> Result<(Option<Subtree>, Option<Subtree>), MstError> {
    let Some(mut sub) = sub else {
        return Ok((None, None));
    };
    let node = sub.make_mut()?;
    let i = match node.search(key) {
        Err(i) => i,
        Ok(_) => {
            return Err(MstError::InvalidTree {
                reason: format!("key {key:?} found below its height"),
            });
        }
    };
    let gap = node.subtrees[i].take();
    let (low, high) = split(gap, height.saturating_sub(1), key)?;
    let right_leaves = Arc::make_mut(&mut node.leaves).split_off(i);
    let mut right_subtrees = node.subtrees.split_off(i + 1);
    right_subtrees.insert(0, high);
    node.subtrees[i] = low;
    let left = if node.is_empty() { None } else { Some(sub) };
    let right = Node::new(height, right_leaves, right_subtrees).into_subtree();
    Ok((left, right))
}
