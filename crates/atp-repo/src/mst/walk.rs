//! Reading: point lookups, ordered range listings, and a full walk in a stable block order.

use std::ops::Bound;

use atp_data::Cid;
use atp_syntax::Nsid;

use super::load::{drive, drive_sync};
use super::node::{Node, OpError, Pending, Subtree};
use super::{Mst, MstError, child_height, height_for_key};
use crate::blockstore::{BlockMap, BlockStore};

/// A key and its record CID.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeafEntry {
    /// The repo path, `collection/rkey`.
    pub key: String,
    /// The record CID.
    pub value: Cid,
}

impl Mst {
    /// The value of `key`; absent → `None`.
    pub async fn get<S: BlockStore>(&self, store: &S, key: &str) -> Result<Option<Cid>, MstError> {
        drive(store, || self.try_get(key)).await
    }

    /// Like [`get`](Self::get), loading nodes from a block map.
    pub fn get_from(&self, blocks: &BlockMap, key: &str) -> Result<Option<Cid>, MstError> {
        drive_sync(blocks, || self.try_get(key))
    }

    pub(crate) fn try_get(&self, key: &str) -> Result<Option<Cid>, OpError> {
        let key_height = height_for_key(key.as_bytes());
        let mut node = self.root.node(None)?;
        loop {
            match node.search(key) {
                Ok(i) => return Ok(Some(node.leaves[i].value)),
                Err(_) if node.height <= key_height => return Ok(None),
                Err(i) => match &node.subtrees[i] {
                    None => return Ok(None),
                    Some(child) => node = child.node(Some(child_height(node.height)?))?,
                },
            }
        }
    }

    /// Up to `limit` entries with keys in `(lower, upper)` bounds, in key order (descending if
    /// `reverse`).
    pub async fn list<S: BlockStore>(
        &self,
        store: &S,
        lower: Bound<&str>,
        upper: Bound<&str>,
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<LeafEntry>, MstError> {
        let range = Range {
            lower,
            upper,
            limit,
            reverse,
        };
        drive(store, || self.try_list(&range)).await
    }

    /// The records of one collection, like `com.atproto.repo.listRecords`: up to `limit` entries,
    /// ascending (or descending if `reverse`), starting after the key `collection/cursor` when a
    /// cursor (an rkey) is given.
    pub async fn list_collection<S: BlockStore>(
        &self,
        store: &S,
        collection: &Nsid,
        cursor: Option<&str>,
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<LeafEntry>, MstError> {
        // Keys of the collection sort between "coll/" and "coll0" ('0' follows '/').
        let start = format!("{}/", collection.as_str());
        let end = format!("{}0", collection.as_str());
        let at = cursor.map(|rkey| format!("{start}{rkey}"));
        let (lower, upper) = match (&at, reverse) {
            (Some(at), false) => (Bound::Excluded(at.as_str()), Bound::Excluded(end.as_str())),
            (Some(at), true) => (
                Bound::Included(start.as_str()),
                Bound::Excluded(at.as_str()),
            ),
            (None, _) => (
                Bound::Included(start.as_str()),
                Bound::Excluded(end.as_str()),
            ),
        };
        self.list(store, lower, upper, limit, reverse).await
    }

    /// Every entry, in key order.
    pub async fn leaves<S: BlockStore>(&self, store: &S) -> Result<Vec<LeafEntry>, MstError> {
        self.list(store, Bound::Unbounded, Bound::Unbounded, usize::MAX, false)
            .await
    }

    /// Like [`leaves`](Self::leaves), loading nodes from a block map.
    pub fn leaves_from(&self, blocks: &BlockMap) -> Result<Vec<LeafEntry>, MstError> {
        let range = Range {
            lower: Bound::Unbounded,
            upper: Bound::Unbounded,
            limit: usize::MAX,
            reverse: false,
        };
        drive_sync(blocks, || self.try_list(&range))
    }

    fn try_list(&self, range: &Range<'_>) -> Result<Vec<LeafEntry>, OpError> {
        let mut lister = Lister {
            range,
            out: Vec::new(),
            pending: Vec::new(),
            seen_after_pending: 0,
        };
        lister.visit(&self.root, None)?;
        if lister.pending.is_empty() {
            Ok(lister.out)
        } else {
            Err(OpError::Need(lister.pending))
        }
    }

    /// Walks a fully loaded tree (see [`Mst::load_all`]): every node, then its contents in key
    /// order (the left gap, then each record and the gap after it), depth first. This is a stable
    /// order for CAR export. An unloaded node is reported as [`MstError::MissingBlocks`].
    pub fn walk_loaded(&self) -> Walker {
        Walker {
            stack: vec![Frame::Visit(self.root.clone(), None)],
        }
    }
}

struct Range<'a> {
    lower: Bound<&'a str>,
    upper: Bound<&'a str>,
    limit: usize,
    reverse: bool,
}

impl Range<'_> {
    fn above_lower(&self, key: &str) -> bool {
        match self.lower {
            Bound::Included(b) => key >= b,
            Bound::Excluded(b) => key > b,
            Bound::Unbounded => true,
        }
    }

    fn below_upper(&self, key: &str) -> bool {
        match self.upper {
            Bound::Included(b) => key <= b,
            Bound::Excluded(b) => key < b,
            Bound::Unbounded => true,
        }
    }
}

/// An in-order (or reverse-order) range walk that, instead of stopping at the first unloaded
/// node, keeps going to collect every unloaded node the range might need, so that a whole layer
/// loads in one batch.
struct Lister<'a> {
    range: &'a Range<'a>,
    out: Vec<LeafEntry>,
    pending: Vec<Pending>,
    /// Leaves passed since the first unloaded node (they cannot be output yet).
    seen_after_pending: usize,
}

impl Lister<'_> {
    fn full(&self) -> bool {
        self.out.len().saturating_add(self.seen_after_pending) >= self.range.limit
    }

    fn visit(&mut self, sub: &Subtree, height: Option<u8>) -> Result<(), OpError> {
        let node = match sub.try_node(height) {
            Ok(node) => node.clone(),
            Err(p) => {
                self.pending.push(p);
                return Ok(());
            }
        };
        let n = node.leaves.len();
        let order: Box<dyn Iterator<Item = usize>> = if self.range.reverse {
            Box::new((0..=n).rev())
        } else {
            Box::new(0..=n)
        };
        for gap in order {
            if self.full() {
                return Ok(());
            }
            // Leaves come after the gap going forward, before it going backward.
            if self.range.reverse && gap < n {
                self.leaf(&node, gap);
            }
            if let Some(child) = &node.subtrees[gap]
                && self.gap_in_range(&node, gap)
            {
                self.visit(child, Some(child_height(node.height)?))?;
            }
            if !self.range.reverse && gap < n && !self.full() {
                self.leaf(&node, gap);
            }
        }
        Ok(())
    }

    fn gap_in_range(&self, node: &Node, gap: usize) -> bool {
        let low = gap.checked_sub(1).map(|i| &*node.leaves[i].key);
        let high = node.leaves.get(gap).map(|l| &*l.key);
        let after_lower = match (high, self.range.lower) {
            (Some(high), Bound::Included(b) | Bound::Excluded(b)) => high > b,
            _ => true,
        };
        let before_upper = match (low, self.range.upper) {
            (Some(low), Bound::Included(b) | Bound::Excluded(b)) => low < b,
            _ => true,
        };
        after_lower && before_upper
    }

    fn leaf(&mut self, node: &Node, i: usize) {
        let leaf = &node.leaves[i];
        if !(self.range.above_lower(&leaf.key) && self.range.below_upper(&leaf.key)) {
            return;
        }
        if self.pending.is_empty() {
            self.out.push(LeafEntry {
                key: leaf.key.to_string(),
                value: leaf.value,
            });
        } else {
            self.seen_after_pending += 1;
        }
    }
}

/// One step of [`Mst::walk_loaded`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalkItem {
    /// An MST node block.
    Node {
        /// The node's CID.
        cid: Cid,
        /// Its DAG-CBOR bytes.
        bytes: Vec<u8>,
    },
    /// A record entry (its block is not part of the tree; fetch it by `value`).
    Leaf(LeafEntry),
}

enum Frame {
    Visit(Subtree, Option<u8>),
    Leaf(LeafEntry),
}

/// Iterator returned by [`Mst::walk_loaded`].
pub struct Walker {
    stack: Vec<Frame>,
}

impl Iterator for Walker {
    type Item = Result<WalkItem, MstError>;

    fn next(&mut self) -> Option<Self::Item> {
        let frame = self.stack.pop()?;
        let (sub, height) = match frame {
            Frame::Leaf(leaf) => return Some(Ok(WalkItem::Leaf(leaf))),
            Frame::Visit(sub, height) => (sub, height),
        };
        let node = match sub.try_node(height) {
            Ok(node) => node.clone(),
            Err(p) => {
                self.stack.clear();
                return Some(Err(MstError::MissingBlocks {
                    cids: vec![p.stub.cid],
                }));
            }
        };
        let child = node.height.checked_sub(1);
        // Push in reverse so the left gap comes out first.
        for (i, leaf) in node.leaves.iter().enumerate().rev() {
            if let Some(s) = &node.subtrees[i + 1] {
                self.stack.push(Frame::Visit(s.clone(), child));
            }
            self.stack.push(Frame::Leaf(LeafEntry {
                key: leaf.key.to_string(),
                value: leaf.value,
            }));
        }
        if let Some(s) = &node.subtrees[0] {
            self.stack.push(Frame::Visit(s.clone(), child));
        }
        Some(Ok(WalkItem::Node {
            cid: node.cid(),
            bytes: node.to_cbor(),
        }))
    }
}
