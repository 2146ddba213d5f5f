//! The Merkle Search Tree (MST): atproto's ordered, content-addressed map from repo paths
//! (`collection/rkey`) to record CIDs.
//!
//! Spec: <https://atproto.com/specs/repository#mst-structure>.
//!
//! ## Terminology
//!
//! - **key**: a repo path, `collection/rkey` (see [`key`]).
//! - **height** (layer): [`height_for_key`], the number of leading zero bits of SHA-256(key)
//!   divided by two. Leaves are at height 0, the root at the greatest height in the tree.
//! - **node**: one block. A node at height `h` holds the keys of height `h` in its range, in order
//!   (**leaves**, each a key and a record CID), and between and around them the **gaps**: links to
//!   nodes at height `h - 1` holding the keys that fall between two leaves. On the wire the first
//!   gap is `l` and the gap after each entry is that entry's `t` ([`NodeData`]).
//! - **stub**: a link whose node is not loaded yet. Trees are read lazily: an operation that
//!   reaches a stub asks for its block, the driver loads it from a [`BlockStore`](crate::BlockStore)
//!   or a [`BlockMap`](crate::BlockMap), and the operation runs again.
//! - **partial tree**: a tree where some stubs can never be loaded (a CAR slice). Operations that
//!   stay on the loaded part still work, and the root CID is always known.
//!
//! ## Tricky bits
//!
//! - The shape depends only on the set of keys, never on insertion order, so every node is exactly
//!   determined and the root CID identifies the whole map.
//! - Layers are never skipped: a gap at height `h` whose keys are all lower than `h - 1` still
//!   holds a node at `h - 1` with no leaves and a single link. Only the root is trimmed: after a
//!   deletion, a root with no leaves and one link is replaced by its child, repeatedly. The empty
//!   tree is one node `{l: null, e: []}`.
//! - Inserting a key higher than the root adds parent layers above the root, then splits the old
//!   root around the key. Inserting into a gap splits the gap's subtree around the key, all the way
//!   down.
//! - Deleting a key merges the two gaps around it, and recursively the facing edges (rightmost
//!   spine of the left gap, leftmost spine of the right gap) below. So inverting a creation needs
//!   those spines: they are part of a covering proof ([`crate::proof`]).
//! - Prefix compression is per node: the first entry has `p = 0`, and `p` must be the full shared
//!   prefix; decoding refuses anything the encoder would not write, so a loaded node's cached CID
//!   is always the CID of its re-encoding.
//! - Nodes are shared between tree versions (`Arc`) and never change while shared: writers copy a
//!   shared node before changing it (copy-on-write), so an operation on one [`Mst`] handle never
//!   affects another. A node's CID is computed once and cached. A stub's node is filled at most
//!   once, and since it is fixed by the CID, filling it does not change any tree that shares it.

mod build;
mod delete;
mod diff;
mod insert;
pub mod key;
pub(crate) mod load;
pub(crate) mod node;
mod walk;

use std::sync::Arc;

use atp_data::Cid;

pub use diff::{LeafChange, MstDiff};
pub use key::{common_prefix_len, format_key, height_for_key, parse_key, validate_key};
pub use node::{EntryData, NodeData};
pub use walk::{LeafEntry, WalkItem, Walker};

use crate::blockstore::StoreError;
use node::{Node, OpError, Subtree};

/// Why a tree operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MstError {
    /// The key is not a valid repo path.
    #[error("invalid MST key {key:?}: {reason}")]
    InvalidKey {
        /// The key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The same key was given twice where keys must be unique.
    #[error("duplicate MST key {key:?}")]
    DuplicateKey {
        /// The key.
        key: String,
    },
    /// A stored node is malformed or not canonical.
    #[error("invalid MST node {cid}: {reason}")]
    InvalidNode {
        /// The node's CID.
        cid: Cid,
        /// What is wrong with it.
        reason: String,
    },
    /// The tree's structure is inconsistent (e.g. a key stored at the wrong height).
    #[error("invalid MST: {reason}")]
    InvalidTree {
        /// What is wrong.
        reason: String,
    },
    /// Blocks the operation needs are not available (a partial tree, or a store missing blocks).
    #[error("missing MST blocks: {cids:?}")]
    MissingBlocks {
        /// The CIDs that could not be found.
        cids: Vec<Cid>,
    },
    /// The block store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A Merkle Search Tree: an immutable handle, cheap to clone. Operations return new trees that
/// share unchanged nodes with the old one.
#[derive(Debug, Clone)]
pub struct Mst {
    root: Subtree,
}

impl Default for Mst {
    fn default() -> Self {
        Mst::empty()
    }
}

impl Mst {
    /// The empty tree.
    pub fn empty() -> Mst {
        Mst {
            root: Subtree::Loaded(Arc::new(Node::empty())),
        }
    }

    /// The tree whose root node has CID `root`. Nothing is read until an operation needs it.
    pub fn load(root: Cid) -> Mst {
        Mst {
            root: Subtree::stub(root),
        }
    }

    /// The root CID (the commit's `data`). Never needs blocks: unloaded parts keep their CIDs.
    pub fn root_cid(&self) -> Cid {
        self.root.cid()
    }

    /// The root's height (layer), if the root node is loaded; `None` until it is (see
    /// [`Mst::load_all`], or any lookup). The empty tree has height 0.
    pub fn root_height(&self) -> Option<u8> {
        self.root.try_node(None).ok().map(|node| node.height)
    }

    /// The same tree, keeping in memory only the loaded nodes on the way from the root to each
    /// of `keys` (present in the tree or not) and, if `rightmost`, down the right edge (where the
    /// next TID-keyed record goes); every other subtree becomes a link loaded again on demand.
    /// For keeping a tree between commits at a memory cost bounded by what the last commit
    /// touched, instead of everything it ever loaded. Reads nothing; the root CID is unchanged.
    pub fn keep_paths(&self, keys: &[&str], rightmost: bool) -> Mst {
        let mut keys = keys.to_vec();
        if rightmost {
            // Above every valid key (keys are printable ASCII).
            keys.push("\u{7f}");
        }
        keys.sort_unstable();
        keys.dedup();
        Mst {
            root: keep_paths(&self.root, &keys),
        }
    }

    pub(crate) fn root_subtree(&self) -> &Subtree {
        &self.root
    }

    /// A tree from a root that may have become empty or untrimmed; trims it.
    fn from_root(root: Option<Subtree>) -> Result<Mst, OpError> {
        let mut current = root;
        let mut height = None;
        loop {
            let Some(sub) = current else {
                return Ok(Mst::empty());
            };
            let node = sub.node(height)?;
            if node.leaves.is_empty() && node.subtrees.len() == 1 {
                height = Some(child_height(node.height)?);
                current = node.subtrees[0].clone();
            } else {
                return Ok(Mst { root: sub });
            }
        }
    }
}

/// `sub` with only the paths to `keys` (sorted) loaded.
fn keep_paths(sub: &Subtree, keys: &[&str]) -> Subtree {
    if keys.is_empty() {
        return match sub {
            Subtree::Stub(stub) if stub.node.get().is_none() => sub.clone(),
            _ => Subtree::stub(sub.cid()),
        };
    }
    let Ok(node) = sub.try_node(None) else {
        return sub.clone();
    };
    let mut rest = keys;
    let mut subtrees = Vec::with_capacity(node.subtrees.len());
    for (i, child) in node.subtrees.iter().enumerate() {
        // The keys in gap `i` are those below leaf `i` (all the rest for the last gap); a key
        // equal to leaf `i` ends its path at this node.
        let (mine, after) = match node.leaves.get(i) {
            Some(leaf) => {
                let below = rest.partition_point(|k| *k < &*leaf.key);
                let (mine, after) = rest.split_at(below);
                let equal = after.partition_point(|k| *k == &*leaf.key);
                (mine, &after[equal..])
            }
            None => (rest, &rest[rest.len()..]),
        };
        rest = after;
        subtrees.push(child.as_ref().map(|c| keep_paths(c, mine)));
    }
    Subtree::Loaded(Arc::new(node.relinked(subtrees)))
}

/// The height of the children of a node at `height`.
fn child_height(height: u8) -> Result<u8, MstError> {
    height.checked_sub(1).ok_or_else(|| MstError::InvalidTree {
        reason: "subtree below height 0".to_owned(),
    })
}
