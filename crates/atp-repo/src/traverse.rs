//! A streaming, batched, checked depth-first walk over a stored repository tree: the engine of CAR
//! export ([`crate::export`]) and of import verification ([`crate::verify`]).
//!
//! Order: each MST node, then its contents in key order (the left subtree, then each record and
//! the subtree after it). Records therefore come out in key order, which is what makes the
//! cross-node key order check cheap (only the previous key is kept).
//!
//! Memory: the walk keeps a stack of pending links (at most the tree height times a node's
//! fanout) and a read-ahead cache of at most about [`Traversal::DEFAULT_WINDOW`] blocks. The
//! read-ahead simulates the walk from the current stack through the nodes already fetched, and
//! asks the store for every block it will need next, layer by layer, in a few batched
//! [`BlockStore::get_blocks`] calls: a SQLite store answers a window with a handful of queries.
//!
//! Checks, each reported when the walk reaches the block (so errors come in walk order):
//! node bytes match their CID, nodes decode canonically (`Node::decode`: strict DAG-CBOR,
//! maximal prefix compression, strictly ascending keys, every key at the node's height, children
//! one layer down, no empty node below the root, no untrimmed root), keys ascend across nodes,
//! and every block is present. Record bytes are returned as stored: the store is trusted to hold
//! blocks that match their CIDs (stores refuse mismatches on write, and CAR readers check them).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use atp_data::Cid;

use crate::blockstore::BlockStore;
use crate::mst::MstError;
use crate::mst::node::Node;
use crate::verify::{BlockKind, VerifyError};

/// One step of a [`Traversal`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visit {
    /// An MST node, checked canonical; `bytes` are its stored (and re-encodable) bytes.
    Node {
        /// The node's CID.
        cid: Cid,
        /// Its DAG-CBOR bytes.
        bytes: Vec<u8>,
        /// Its height (layer).
        height: u8,
    },
    /// A record entry of the tree, in key order.
    Record {
        /// The repo path `collection/rkey`.
        key: Arc<str>,
        /// The record's CID.
        cid: Cid,
        /// The record block, or `None` if the same CID was returned by a recent record visit
        /// (only when [`Traversal::skip_repeated_records`] is on; the default).
        bytes: Option<Vec<u8>>,
    },
}

/// A link the walk will follow.
#[derive(Debug, Clone)]
enum Pending {
    Node { cid: Cid, height: Option<u8> },
    Record { key: Arc<str>, cid: Cid, node: Cid },
}

impl Pending {
    /// The block and how it is used (the same CID may be wanted as a node and as a record).
    fn key(&self) -> (Cid, bool) {
        match self {
            Pending::Node { cid, .. } => (*cid, true),
            Pending::Record { cid, .. } => (*cid, false),
        }
    }
}

/// Record CIDs returned recently, in a bounded FIFO (so memory does not grow with the repo).
#[derive(Debug, Default)]
struct RecentSet {
    set: HashSet<Cid>,
    order: VecDeque<Cid>,
}

impl RecentSet {
    const CAPACITY: usize = 1 << 12;

    fn contains(&self, cid: &Cid) -> bool {
        self.set.contains(cid)
    }

    fn insert(&mut self, cid: Cid) {
        if self.set.insert(cid) {
            self.order.push_back(cid);
            if self.order.len() > Self::CAPACITY
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }
}

type NodeEntry = Result<(Arc<Node>, Vec<u8>), VerifyError>;
type RecordEntry = Result<Vec<u8>, VerifyError>;

/// A depth-first walk over the tree rooted at an MST node, reading blocks from a store in batches.
/// See the module docs for the order, the memory bound and the checks.
pub struct Traversal<'s, S> {
    store: &'s S,
    stack: Vec<Pending>,
    nodes: HashMap<Cid, NodeEntry>,
    records: HashMap<Cid, RecordEntry>,
    recent: RecentSet,
    skip_repeated: bool,
    last_key: Option<Arc<str>>,
    window: usize,
}

impl<'s, S: BlockStore> Traversal<'s, S> {
    /// Default read-ahead window, in blocks.
    pub const DEFAULT_WINDOW: usize = 1024;

    /// A walk over the tree whose root node is `data` (a commit's `data`).
    pub fn new(store: &'s S, data: Cid) -> Self {
        Traversal {
            store,
            stack: vec![Pending::Node {
                cid: data,
                height: None,
            }],
            nodes: HashMap::new(),
            records: HashMap::new(),
            recent: RecentSet::default(),
            skip_repeated: true,
            last_key: None,
            window: Self::DEFAULT_WINDOW,
        }
    }

    /// Whether a record whose CID was returned shortly before is returned again without bytes
    /// (`true`, the default: a CAR needs each block once) or fetched and returned again.
    pub fn skip_repeated_records(mut self, skip: bool) -> Self {
        self.skip_repeated = skip;
        self
    }

    /// Sets the read-ahead window (in blocks, at least 1).
    pub fn window(mut self, blocks: usize) -> Self {
        self.window = blocks.max(1);
        self
    }

    /// The next node or record; `Ok(None)` at the end. After an error the walk should not be
    /// continued.
    pub async fn next(&mut self) -> Result<Option<Visit>, VerifyError> {
        let Some(top) = self.stack.last() else {
            return Ok(None);
        };
        if !self.is_ready(top) {
            self.fill().await?;
        }
        let Some(item) = self.stack.pop() else {
            return Ok(None);
        };
        match item {
            Pending::Node { cid, .. } => self.visit_node(cid).map(Some),
            Pending::Record { key, cid, node } => self.visit_record(key, cid, node).map(Some),
        }
    }

    fn visit_node(&mut self, cid: Cid) -> Result<Visit, VerifyError> {
        let (node, bytes) = self
            .nodes
            .remove(&cid)
            .unwrap_or(Err(VerifyError::MissingBlock {
                cid,
                kind: BlockKind::MstNode,
            }))?;
        push_children(&mut self.stack, &node);
        Ok(Visit::Node {
            cid,
            bytes,
            height: node.height,
        })
    }

    fn visit_record(&mut self, key: Arc<str>, cid: Cid, node: Cid) -> Result<Visit, VerifyError> {
        if let Some(prev) = &self.last_key
            && *key <= **prev
        {
            return Err(VerifyError::BadMstOrder {
                cid: node,
                reason: format!("key {key:?} does not sort after the previous key {prev:?}").into(),
            });
        }
        self.last_key = Some(key.clone());
        if self.skip_repeated && self.recent.contains(&cid) {
            // Prefetched before an earlier key with the same CID was visited: drop it.
            self.records.remove(&cid);
            return Ok(Visit::Record {
                key,
                cid,
                bytes: None,
            });
        }
        let missing = || VerifyError::MissingBlock {
            cid,
            kind: BlockKind::Record { key: key.clone() },
        };
        let bytes = self
            .records
            .remove(&cid)
            .unwrap_or_else(|| Err(missing()))?;
        self.recent.insert(cid);
        Ok(Visit::Record {
            key,
            cid,
            bytes: Some(bytes),
        })
    }

    fn is_ready(&self, item: &Pending) -> bool {
        match item {
            Pending::Node { cid, .. } => self.nodes.contains_key(cid),
            Pending::Record { cid, .. } => {
                self.records.contains_key(cid) || (self.skip_repeated && self.recent.contains(cid))
            }
        }
    }

    /// Reads ahead: fetches what the next `window` steps of the walk need, then, layer by layer,
    /// the children of the nodes just fetched, up to `window` blocks in all. One store call per
    /// layer.
    async fn fill(&mut self) -> Result<(), VerifyError> {
        let mut budget = self.window;
        let mut want = self.plan();
        while !want.is_empty() && budget > 0 {
            want.truncate(budget);
            budget -= want.len();
            let fetched_nodes: Vec<Cid> = want
                .iter()
                .filter_map(|p| match p {
                    Pending::Node { cid, .. } => Some(*cid),
                    Pending::Record { .. } => None,
                })
                .collect();
            self.fetch(want).await?;
            let mut children = Vec::new();
            for cid in &fetched_nodes {
                if let Some(Ok((node, _))) = self.nodes.get(cid) {
                    let start = children.len();
                    push_children(&mut children, node);
                    children[start..].reverse();
                }
            }
            let mut seen = HashSet::new();
            want = children
                .into_iter()
                .filter(|p| !self.is_ready(p) && seen.insert(p.key()))
                .collect();
        }
        Ok(())
    }

    /// The blocks the next `window` steps need that are not fetched yet, in walk order,
    /// simulating the walk through the nodes already fetched.
    fn plan(&self) -> Vec<Pending> {
        let mut sim = self.stack.clone();
        let mut seen = HashSet::new();
        let mut want = Vec::new();
        let mut steps = 0;
        while let Some(item) = sim.pop() {
            steps += 1;
            if steps > self.window {
                break;
            }
            if let Pending::Node { cid, .. } = &item
                && let Some(entry) = self.nodes.get(cid)
            {
                if let Ok((node, _)) = entry {
                    push_children(&mut sim, node);
                }
                continue;
            }
            if !self.is_ready(&item) && seen.insert(item.key()) {
                want.push(item);
            }
        }
        want
    }

    async fn fetch(&mut self, want: Vec<Pending>) -> Result<(), VerifyError> {
        let cids: Vec<Cid> = want
            .iter()
            .map(|p| match p {
                Pending::Node { cid, .. } | Pending::Record { cid, .. } => *cid,
            })
            .collect();
        let mut found = self.store.get_blocks(&cids).await?;
        for item in want {
            match item {
                Pending::Node { cid, height } => {
                    let bytes = found
                        .blocks
                        .remove(&cid)
                        .or_else(|| self.cached_bytes(&cid));
                    let entry = match bytes {
                        Some(bytes) => decode_node(&cid, bytes, height),
                        None => Err(VerifyError::MissingBlock {
                            cid,
                            kind: BlockKind::MstNode,
                        }),
                    };
                    self.nodes.insert(cid, entry);
                }
                Pending::Record { key, cid, .. } => {
                    let bytes = found
                        .blocks
                        .remove(&cid)
                        .or_else(|| self.cached_bytes(&cid));
                    let entry = match bytes {
                        Some(bytes) => Ok(bytes),
                        None => Err(VerifyError::MissingBlock {
                            cid,
                            kind: BlockKind::Record { key: key.clone() },
                        }),
                    };
                    self.records.insert(cid, entry);
                }
            }
        }
        Ok(())
    }
}

impl<S> Traversal<'_, S> {
    /// A block already taken from a batch under the other kind: the same CID can be wanted both
    /// as a node and as a record (a record shaped exactly like a node).
    fn cached_bytes(&self, cid: &Cid) -> Option<Vec<u8>> {
        match (self.nodes.get(cid), self.records.get(cid)) {
            (Some(Ok((_, bytes))), _) | (_, Some(Ok(bytes))) => Some(bytes.clone()),
            _ => None,
        }
    }
}

/// Pushes a node's links so that they pop in walk order: left subtree, then each record and the
/// subtree after it.
fn push_children(stack: &mut Vec<Pending>, node: &Node) {
    let node_cid = node.cid();
    let child = node.height.checked_sub(1);
    for (i, leaf) in node.leaves.iter().enumerate().rev() {
        if let Some(Some(sub)) = node.subtrees.get(i + 1) {
            stack.push(Pending::Node {
                cid: sub.cid(),
                height: child,
            });
        }
        stack.push(Pending::Record {
            key: leaf.key.clone(),
            cid: leaf.value,
            node: node_cid,
        });
    }
    if let Some(Some(sub)) = node.subtrees.first() {
        stack.push(Pending::Node {
            cid: sub.cid(),
            height: child,
        });
    }
}

/// Checks and decodes a node block; `height` is the height it must have (`None` for the root).
fn decode_node(cid: &Cid, bytes: Vec<u8>, height: Option<u8>) -> NodeEntry {
    if !atp_data::cid::matches(cid, &bytes) {
        return Err(VerifyError::HashMismatch { cid: *cid });
    }
    match Node::decode(cid, &bytes, height) {
        Ok(node) => Ok((Arc::new(node), bytes)),
        Err(MstError::InvalidNode { cid, reason }) if reason.contains("ascending") => {
            Err(VerifyError::BadMstOrder {
                cid,
                reason: reason.into(),
            })
        }
        Err(MstError::InvalidNode { cid, reason }) => Err(VerifyError::BadMstNode {
            cid,
            reason: reason.into(),
        }),
        Err(other) => Err(VerifyError::BadMstNode {
            cid: *cid,
            reason: other.to_string().into(),
        }),
    }
}
