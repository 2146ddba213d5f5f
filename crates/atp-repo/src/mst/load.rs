//! Loading stubs: the drivers that run a synchronous tree operation, load the blocks it asks for,
//! and retry.
//!
//! Operations never mutate a tree, so a retry starts from scratch and sees the stubs loaded by
//! the previous round. Each round loads at least one new block, so the loop ends.

use std::collections::HashSet;
use std::sync::Arc;

use atp_data::Cid;

use super::node::{Node, OpError, Pending};
use super::{Mst, MstError};
use crate::blockstore::{BlockMap, BlockStore};

/// Runs `attempt` until it no longer needs blocks, fetching them from `store` in one batch per
/// round.
pub(crate) async fn drive<S, T, F>(store: &S, mut attempt: F) -> Result<T, MstError>
where
    S: BlockStore,
    F: FnMut() -> Result<T, OpError> + Send,
{
    loop {
        match attempt() {
            Ok(value) => return Ok(value),
            Err(OpError::Fail(e)) => return Err(e),
            Err(OpError::Need(pending)) => fetch(store, pending).await?,
        }
    }
}

/// Like [`drive`], reading blocks from a map (a CAR slice, a proof) instead of a store.
pub(crate) fn drive_sync<T>(
    blocks: &BlockMap,
    mut attempt: impl FnMut() -> Result<T, OpError>,
) -> Result<T, MstError> {
    loop {
        match attempt() {
            Ok(value) => return Ok(value),
            Err(OpError::Fail(e)) => return Err(e),
            Err(OpError::Need(pending)) => {
                let missing: Vec<Cid> = dedup(&pending)
                    .into_iter()
                    .filter(|c| !blocks.contains_key(c))
                    .collect();
                if !missing.is_empty() {
                    return Err(MstError::MissingBlocks { cids: missing });
                }
                fill(&pending, blocks)?;
            }
        }
    }
}

fn dedup(pending: &[Pending]) -> Vec<Cid> {
    let mut seen = HashSet::new();
    pending
        .iter()
        .map(|p| p.stub.cid)
        .filter(|c| seen.insert(*c))
        .collect()
}

async fn fetch<S: BlockStore>(store: &S, pending: Vec<Pending>) -> Result<(), MstError> {
    let found = store.get_blocks(&dedup(&pending)).await?;
    if !found.missing.is_empty() {
        return Err(MstError::MissingBlocks {
            cids: found.missing,
        });
    }
    fill(&pending, &found.blocks)
}

fn fill(pending: &[Pending], blocks: &BlockMap) -> Result<(), MstError> {
    for p in pending {
        if p.stub.node.get().is_some() {
            continue;
        }
        let bytes = blocks.get(&p.stub.cid).ok_or(MstError::MissingBlocks {
            cids: vec![p.stub.cid],
        })?;
        let node = Node::decode(&p.stub.cid, bytes, p.height)?;
        // Another clone of the stub may have been filled meanwhile; the content is the same.
        let _ = p.stub.node.set(Arc::new(node));
    }
    Ok(())
}

impl Mst {
    /// Loads every node of the tree, one batch per layer, so that synchronous walks
    /// ([`Mst::walk_loaded`]) can run.
    pub async fn load_all<S: BlockStore>(&self, store: &S) -> Result<(), MstError> {
        drive(store, || self.try_load_all()).await
    }

    /// Like [`load_all`](Self::load_all), from a block map. A missing block is an error.
    pub fn load_all_from(&self, blocks: &BlockMap) -> Result<(), MstError> {
        drive_sync(blocks, || self.try_load_all())
    }

    fn try_load_all(&self) -> Result<(), OpError> {
        let mut pending = Vec::new();
        let mut stack = vec![(self.root.clone(), None)];
        while let Some((sub, height)) = stack.pop() {
            match sub.try_node(height) {
                Err(p) => pending.push(p),
                Ok(node) => {
                    let child = node.height.checked_sub(1);
                    for s in node.subtrees.iter().flatten() {
                        stack.push((s.clone(), child));
                    }
                }
            }
        }
        if pending.is_empty() {
            Ok(())
        } else {
            Err(OpError::Need(pending))
        }
    }
}
