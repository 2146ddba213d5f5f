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
use std::ops::Range;
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
pub(crate) fn decode_node(cid: &Cid, bytes: Vec<u8>, height: Option<u8>) -> NodeEntry {
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

/// One entry of a [`ScannedNode`]: its key, its record's CID and its right subtree's CID, as
/// ranges into the node's buffers.
pub(crate) type ScannedEntry = (Range<usize>, Range<usize>, Option<Range<usize>>);

/// A node read straight from its bytes by [`scan_node`]: its height, and its links and keys as
/// ranges into two buffers it owns (`keys`, and `cids` holding each link's binary CID).
#[derive(Debug, Default)]
pub(crate) struct ScannedNode {
    pub(crate) height: u8,
    pub(crate) keys: Vec<u8>,
    pub(crate) cids: Vec<u8>,
    pub(crate) left: Option<Range<usize>>,
    /// In key order.
    pub(crate) entries: Vec<ScannedEntry>,
}

impl ScannedNode {
    pub(crate) fn clear(&mut self) {
        self.keys.clear();
        self.cids.clear();
        self.left = None;
        self.entries.clear();
    }

    fn push_cid(&mut self, cid: &Cid) -> Range<usize> {
        let start = self.cids.len();
        // Writing to a Vec cannot fail.
        let _ = cid.write_bytes(&mut self.cids);
        start..self.cids.len()
    }
}

/// Reads a node whose hash was checked, making the same checks as [`Node::decode`] without
/// building a `Node`: the bytes must be exactly the canonical DAG-CBOR layout (anything else goes
/// through `Node::decode`, for the precise error). Links are kept as they are written; each must
/// be a canonical CID for the node to pass, which the caller checks by finding it among the
/// repository's blocks (stored CIDs are canonical) or else by parsing it.
pub(crate) fn scan_node(
    cid: &Cid,
    bytes: &[u8],
    height: Option<u8>,
    out: &mut ScannedNode,
) -> Result<(), VerifyError> {
    out.clear();
    if cid.codec() == atp_data::cid::DAG_CBOR && scan_canonical(bytes, height, out).is_some() {
        return Ok(());
    }
    // Not the exact layout, or a check failed: let the strict decoder say why.
    out.clear();
    let (node, _) = decode_node(cid, bytes.to_vec(), height)?;
    out.height = node.height;
    if let Some(Some(left)) = node.subtrees.first() {
        out.left = Some(out.push_cid(&left.cid()));
    }
    for (i, leaf) in node.leaves.iter().enumerate() {
        let start = out.keys.len();
        out.keys.extend_from_slice(leaf.key.as_bytes());
        let value = out.push_cid(&leaf.value);
        let right = match node.subtrees.get(i + 1) {
            Some(Some(sub)) => Some(out.push_cid(&sub.cid())),
            _ => None,
        };
        out.entries.push((start..out.keys.len(), value, right));
    }
    Ok(())
}

/// The fast path of [`scan_node`]: `None` if the bytes are not exactly a canonical node that
/// passes every check.
pub(crate) fn scan_canonical(
    bytes: &[u8],
    height: Option<u8>,
    out: &mut ScannedNode,
) -> Option<()> {
    use crate::mst::key::{common_prefix_len, height_for_key, is_plausible_key};
    let mut r = Reader { bytes, pos: 0 };
    r.expect(&[0xa2, 0x61, b'e'])?;
    let count = r.header(4)?;
    let mut node_height = height;
    let mut prev: Option<Range<usize>> = None;
    for _ in 0..count {
        r.expect(&[0xa4, 0x61, b'k'])?;
        let suffix_len = usize::try_from(r.header(2)?).ok()?;
        let suffix = r.take(suffix_len)?;
        r.expect(&[0x61, b'p'])?;
        let prefix_len = usize::try_from(r.header(0)?).ok()?;
        r.expect(&[0x61, b't'])?;
        let right = r.optional_link(&mut out.cids)?;
        r.expect(&[0x61, b'v'])?;
        let value = r.link(&mut out.cids)?;
        let keys = &mut out.keys;
        let start = keys.len();
        match &prev {
            Some(p) => {
                if prefix_len > p.len() {
                    return None;
                }
                keys.extend_from_within(p.start..p.start + prefix_len);
            }
            None if prefix_len != 0 => return None,
            None => {}
        }
        keys.extend_from_slice(suffix);
        let key = &keys[start..];
        if let Some(p) = &prev {
            let prev_key = &keys[p.clone()];
            if common_prefix_len(prev_key, key) != prefix_len || key <= prev_key {
                return None;
            }
        }
        if !is_plausible_key(key) {
            return None;
        }
        let key_height = height_for_key(key);
        if *node_height.get_or_insert(key_height) != key_height {
            return None;
        }
        let end = keys.len();
        out.entries.push((start..end, value, right));
        prev = Some(start..end);
    }
    r.expect(&[0x61, b'l'])?;
    let left = r.optional_link(&mut out.cids)?;
    if r.pos != bytes.len() {
        return None;
    }
    let node_height = match node_height {
        Some(h) => h,
        None if left.is_none() => 0,
        None => return None,
    };
    let has_subtree = left.is_some() || out.entries.iter().any(|e| e.2.is_some());
    if node_height == 0 && has_subtree {
        return None;
    }
    if height.is_some() && out.entries.is_empty() && left.is_none() {
        return None;
    }
    out.height = node_height;
    out.left = left;
    Some(())
}

/// A cursor over canonical DAG-CBOR for [`scan_canonical`].
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let slice = self.bytes.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(slice)
    }

    fn expect(&mut self, want: &[u8]) -> Option<()> {
        (self.take(want.len())? == want).then_some(())
    }

    /// A header of major type `major` in its minimal form; its argument.
    fn header(&mut self, major: u8) -> Option<u64> {
        let first = *self.take(1)?.first()?;
        if first >> 5 != major {
            return None;
        }
        let (n, min) = match first & 0x1f {
            info @ 0..=23 => return Some(u64::from(info)),
            24 => (1, 24),
            25 => (2, 0x100),
            26 => (4, 0x1_0000),
            27 => (8, 0x1_0000_0000),
            _ => return None,
        };
        let arg = self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        (arg >= min).then_some(arg)
    }

    /// Tag 42 over `0x00 ‖ CID bytes`: the CID bytes, copied to `cids` (not parsed).
    fn link(&mut self, cids: &mut Vec<u8>) -> Option<Range<usize>> {
        self.expect(&[0xd8, 42])?;
        let len = usize::try_from(self.header(2)?).ok()?;
        let raw = self.take(len)?;
        let (0, cid) = raw.split_first()? else {
            return None;
        };
        if cid.is_empty() {
            return None;
        }
        let start = cids.len();
        cids.extend_from_slice(cid);
        Some(start..cids.len())
    }

    fn optional_link(&mut self, cids: &mut Vec<u8>) -> Option<Option<Range<usize>>> {
        if self.bytes.get(self.pos) == Some(&0xf6) {
            self.pos += 1;
            return Some(None);
        }
        self.link(cids).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blockstore::MemoryBlockStore;

    /// The fast path reads every node of a real tree, the same as the strict decoder.
    #[tokio::test]
    async fn scan_reads_canonical_nodes_like_the_decoder() {
        let store = MemoryBlockStore::new();
        let signer =
            atp_crypto::Keypair::from_private_bytes(atp_crypto::Curve::K256, &[3u8; 32]).unwrap();
        let did: atp_syntax::Did = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa".parse().unwrap();
        let records = (0..500)
            .map(|i| {
                let record = atp_data::Value::Map(std::collections::BTreeMap::from([(
                    "n".to_owned(),
                    atp_data::Value::Integer(i),
                )]));
                (
                    "com.example.thing".parse().unwrap(),
                    format!("k{i:05}").parse().unwrap(),
                    record,
                )
            })
            .collect();
        let clock = atp_syntax::Tid::from_parts(1_700_000_000_000_000, 0);
        crate::write::create_repo(&store, &did, records, &signer, &clock)
            .await
            .unwrap();
        let mut nodes = 0;
        for (cid, bytes) in store.all_blocks() {
            let Ok((node, _)) = decode_node(&cid, bytes.clone(), None) else {
                continue;
            };
            nodes += 1;
            let mut scanned = ScannedNode::default();
            assert!(
                scan_canonical(&bytes, None, &mut scanned).is_some(),
                "{cid}"
            );
            assert_eq!(scanned.height, node.height);
            let keys: Vec<&[u8]> = scanned
                .entries
                .iter()
                .map(|(k, _, _)| &scanned.keys[k.clone()])
                .collect();
            let want: Vec<&[u8]> = node.leaves.iter().map(|l| l.key.as_bytes()).collect();
            assert_eq!(keys, want);
            for ((_, value, _), leaf) in scanned.entries.iter().zip(node.leaves.iter()) {
                assert_eq!(
                    &scanned.cids[value.clone()],
                    leaf.value.to_bytes().as_slice()
                );
            }
            // A node checked against the wrong height falls back to the decoder's refusal.
            let mut other = ScannedNode::default();
            let wrong = Some(node.height + 1);
            assert!(scan_canonical(&bytes, wrong, &mut other).is_none());
            assert!(scan_node(&cid, &bytes, wrong, &mut other).is_err());
        }
        assert!(nodes > 10, "{nodes} nodes");
    }
}
