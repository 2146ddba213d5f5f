//! Operation inversion (sync v1.1): recovering the previous MST root of a commit from its ops and
//! the blocks it carries, as a relay does to check `prevData`.
//!
//! Each op is undone on the new tree, loaded only from the given blocks: a create is undone by
//! deleting the path (its value must be the op's `cid`), an update by restoring `prev` (the
//! replaced value must be `cid`), a delete by re-inserting `prev` (the path must be absent). Paths
//! are unique within a commit, so the order of undoing does not matter; it is done in reverse.
//! If the commit is honest and carries covering proofs, the result is `prevData`.

use std::collections::HashSet;

use atp_data::Cid;

use crate::blockstore::BlockMap;
use crate::mst::{Mst, MstError, validate_key};
use crate::write::{RecordOp, WriteAction};

/// Why a commit's ops could not be inverted, or did not lead back to `prevData`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvertError {
    /// An op is malformed (e.g. a delete without `prev`, as in sync 1.0 commits).
    #[error("op {index} ({path}) cannot be inverted: {reason}")]
    InvalidOp {
        /// Position in the op list.
        index: usize,
        /// The op's path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Two ops name the same path.
    #[error("path appears twice in the ops: {path}")]
    DuplicatePath {
        /// The path.
        path: String,
    },
    /// The tree does not hold what an op claims (e.g. a created path with another CID).
    #[error("op on {path} does not match the tree: {reason}")]
    Mismatch {
        /// The path.
        path: String,
        /// What differs.
        reason: String,
    },
    /// A tree operation failed (including missing blocks: the commit lacks proof blocks).
    #[error(transparent)]
    Mst(#[from] MstError),
    /// The inverted tree's root is not the claimed previous root.
    #[error("inverted MST root {computed} does not match prevData {expected}")]
    PrevDataMismatch {
        /// The commit's `prevData`.
        expected: Box<Cid>,
        /// The root computed by inversion.
        computed: Box<Cid>,
    },
}

/// Undoes `ops` on the tree with root `data`, reading nodes only from `blocks`, and returns the
/// previous root.
pub fn invert_ops(data: &Cid, ops: &[RecordOp], blocks: &BlockMap) -> Result<Cid, InvertError> {
    check_ops(ops)?;
    let mut tree = Mst::load(*data);
    for op in ops.iter().rev() {
        tree = invert_op(tree, op, blocks)?;
    }
    Ok(tree.root_cid())
}

/// Inverts `ops` (see [`invert_ops`]) and checks the result is `prev_data`.
pub fn verify_prev_data(
    data: &Cid,
    ops: &[RecordOp],
    blocks: &BlockMap,
    prev_data: &Cid,
) -> Result<(), InvertError> {
    let computed = invert_ops(data, ops, blocks)?;
    if computed == *prev_data {
        Ok(())
    } else {
        Err(InvertError::PrevDataMismatch {
            expected: Box::new(*prev_data),
            computed: Box::new(computed),
        })
    }
}

fn check_ops(ops: &[RecordOp]) -> Result<(), InvertError> {
    let mut seen = HashSet::new();
    for (index, op) in ops.iter().enumerate() {
        let invalid = |reason: &str| InvertError::InvalidOp {
            index,
            path: op.path.clone(),
            reason: reason.to_owned(),
        };
        validate_key(&op.path).map_err(|e| invalid(&e.to_string()))?;
        match (op.action, op.cid, op.prev) {
            (WriteAction::Create, Some(_), None) => {}
            (WriteAction::Create, _, _) => return Err(invalid("a create needs cid and no prev")),
            (WriteAction::Update, Some(cid), Some(prev)) if cid != prev => {}
            (WriteAction::Update, _, _) => {
                return Err(invalid("an update needs cid and a different prev"));
            }
            (WriteAction::Delete, None, Some(_)) => {}
            (WriteAction::Delete, _, _) => return Err(invalid("a delete needs prev and no cid")),
        }
        if !seen.insert(op.path.as_str()) {
            return Err(InvertError::DuplicatePath {
                path: op.path.clone(),
            });
        }
    }
    Ok(())
}

fn invert_op(tree: Mst, op: &RecordOp, blocks: &BlockMap) -> Result<Mst, InvertError> {
    let mismatch = |reason: String| InvertError::Mismatch {
        path: op.path.clone(),
        reason,
    };
    match (op.action, op.cid, op.prev) {
        (WriteAction::Create, Some(cid), _) => {
            let (tree, removed) = tree.delete_from(blocks, &op.path)?;
            if removed != Some(cid) {
                return Err(mismatch(format!("created {cid}, tree holds {removed:?}")));
            }
            Ok(tree)
        }
        (WriteAction::Update, Some(cid), Some(prev)) => {
            let (tree, replaced) = tree.insert_from(blocks, &op.path, prev)?;
            if replaced != Some(cid) {
                return Err(mismatch(format!(
                    "updated to {cid}, tree holds {replaced:?}"
                )));
            }
            Ok(tree)
        }
        (WriteAction::Delete, _, Some(prev)) => {
            let (tree, replaced) = tree.insert_from(blocks, &op.path, prev)?;
            if let Some(found) = replaced {
                return Err(mismatch(format!("deleted, but the tree holds {found}")));
            }
            Ok(tree)
        }
        _ => Err(InvertError::InvalidOp {
            index: 0,
            path: op.path.clone(),
            reason: "malformed op".to_owned(),
        }),
    }
}
