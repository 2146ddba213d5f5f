//! MST nodes: the wire form ([`NodeData`]) and the in-memory form (`Node`, `Subtree`).
//!
//! Wire form (DAG-CBOR): `{l: link|null, e: [{p: int, k: bytes, v: link, t: link|null}]}`.
//! `l` is the subtree left of the first entry, each entry's `t` the subtree right of it; `p` is the
//! number of leading bytes the entry's key shares with the previous entry's key in the same node
//! (0 for the first entry) and `k` the remaining bytes.
//!
//! In memory a node is `leaves` plus `subtrees`, with `subtrees.len() == leaves.len() + 1`:
//! `subtrees[i]` is the gap left of `leaves[i]`, the last one the gap right of the last leaf.

use std::sync::{Arc, OnceLock};

use atp_data::cbor::{Encoder, from_slice};
use atp_data::{Cid, Value};

use super::MstError;
use super::key::{common_prefix_len, height_for_key, is_plausible_key};

/// One entry of a node on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryData {
    /// Bytes shared with the previous entry's key (`p`).
    pub prefix_len: usize,
    /// The rest of the key (`k`).
    pub key_suffix: Vec<u8>,
    /// The record CID (`v`).
    pub value: Cid,
    /// The subtree right of this entry (`t`).
    pub right: Option<Cid>,
}

/// A node as stored: the DAG-CBOR shape, keys still prefix-compressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeData {
    /// The subtree left of the first entry (`l`).
    pub left: Option<Cid>,
    /// The entries (`e`), in key order.
    pub entries: Vec<EntryData>,
}

impl NodeData {
    /// Canonical DAG-CBOR bytes of the node.
    pub fn to_cbor(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.entries.len() * 96);
        let mut enc = Encoder::new(&mut out);
        // Keys in DAG-CBOR order: "e" < "l"; entries: "k" < "p" < "t" < "v".
        enc.map(2).str("e").array(self.entries.len());
        for entry in &self.entries {
            enc.map(4).str("k").bytes(&entry.key_suffix);
            enc.str("p").uint(entry.prefix_len as u64);
            enc.str("t");
            match &entry.right {
                Some(cid) => enc.link(cid),
                None => enc.null(),
            };
            enc.str("v").link(&entry.value);
        }
        enc.str("l");
        match &self.left {
            Some(cid) => enc.link(cid),
            None => enc.null(),
        };
        out
    }

    /// Parses strict DAG-CBOR bytes of a node. Exactly the fields `l` and `e` (and `p`, `k`, `v`,
    /// `t` in entries) must be present; `l` and `t` may be null.
    pub fn from_cbor(bytes: &[u8]) -> Result<NodeData, String> {
        let value = from_slice(bytes).map_err(|e| e.to_string())?;
        let map = value.as_map().ok_or("node is not a map")?;
        if map.len() != 2 {
            return Err("node must have exactly the fields l and e".to_owned());
        }
        let left = optional_link(map.get("l").ok_or("missing l")?, "l")?;
        let entries = map
            .get("e")
            .and_then(Value::as_array)
            .ok_or("e must be an array")?;
        let entries = entries
            .iter()
            .map(entry_from_value)
            .collect::<Result<_, _>>()?;
        Ok(NodeData { left, entries })
    }
}

fn optional_link(value: &Value, field: &str) -> Result<Option<Cid>, String> {
    match value {
        Value::Null => Ok(None),
        Value::Link(cid) => Ok(Some(*cid)),
        _ => Err(format!("{field} must be a link or null")),
    }
}

fn entry_from_value(value: &Value) -> Result<EntryData, String> {
    let map = value.as_map().ok_or("entry is not a map")?;
    if map.len() != 4 {
        return Err("entry must have exactly the fields p, k, v and t".to_owned());
    }
    let prefix_len = map
        .get("p")
        .and_then(Value::as_i64)
        .ok_or("p must be an integer")?;
    let prefix_len = usize::try_from(prefix_len).map_err(|_| "p must not be negative")?;
    let key_suffix = map
        .get("k")
        .and_then(Value::as_bytes)
        .ok_or("k must be bytes")?
        .to_vec();
    let value = *map
        .get("v")
        .and_then(Value::as_link)
        .ok_or("v must be a link")?;
    let right = optional_link(map.get("t").ok_or("missing t")?, "t")?;
    Ok(EntryData {
        prefix_len,
        key_suffix,
        value,
        right,
    })
}

/// A key/value pair stored in a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Leaf {
    pub(crate) key: Arc<str>,
    pub(crate) value: Cid,
}

/// A link to a child node: either built/decoded in memory, or known only by CID until loaded.
#[derive(Debug, Clone)]
pub(crate) enum Subtree {
    Loaded(Arc<Node>),
    Stub(Arc<Stub>),
}

/// A node known by CID. Loading fills `node` once; since the content is fixed by the CID, filling
/// it never changes what the tree means, so trees sharing the stub stay immutable in effect.
#[derive(Debug)]
pub(crate) struct Stub {
    pub(crate) cid: Cid,
    pub(crate) node: OnceLock<Arc<Node>>,
}

/// A stub that an operation needs loaded before it can go on, with the height its node must have
/// (`None` for a root, whose height is read from its keys).
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub(crate) stub: Arc<Stub>,
    pub(crate) height: Option<u8>,
}

/// An operation's failure: either it needs blocks (retry after loading them) or it failed for good.
#[derive(Debug)]
pub(crate) enum OpError {
    Need(Vec<Pending>),
    Fail(MstError),
}

impl From<MstError> for OpError {
    fn from(e: MstError) -> Self {
        OpError::Fail(e)
    }
}

impl Subtree {
    pub(crate) fn stub(cid: Cid) -> Subtree {
        Subtree::Stub(Arc::new(Stub {
            cid,
            node: OnceLock::new(),
        }))
    }

    pub(crate) fn cid(&self) -> Cid {
        match self {
            Subtree::Loaded(node) => node.cid(),
            Subtree::Stub(stub) => stub.cid,
        }
    }

    /// The node, or the stub to load (`height` is what the node's height must be).
    pub(crate) fn try_node(&self, height: Option<u8>) -> Result<&Arc<Node>, Pending> {
        match self {
            Subtree::Loaded(node) => Ok(node),
            Subtree::Stub(stub) => stub.node.get().ok_or_else(|| Pending {
                stub: stub.clone(),
                height,
            }),
        }
    }

    /// The node for writing: a loaded stub becomes a loaded node, a node shared with other trees
    /// is copied first (copy-on-write), and the cached CID is dropped. An unloaded stub is
    /// reported as missing (writers check that their path is loaded first).
    pub(crate) fn make_mut(&mut self) -> Result<&mut Node, MstError> {
        if let Subtree::Stub(stub) = self {
            let node = stub.node.get().cloned().ok_or(MstError::MissingBlocks {
                cids: vec![stub.cid],
            })?;
            *self = Subtree::Loaded(node);
        }
        match self {
            Subtree::Loaded(arc) => {
                let node = Arc::make_mut(arc);
                node.cid = OnceLock::new();
                Ok(node)
            }
            Subtree::Stub(stub) => Err(MstError::MissingBlocks {
                cids: vec![stub.cid],
            }),
        }
    }

    /// Like [`try_node`](Self::try_node), as an [`OpError`].
    pub(crate) fn node(&self, height: Option<u8>) -> Result<&Arc<Node>, OpError> {
        self.try_node(height).map_err(|p| OpError::Need(vec![p]))
    }
}

/// An in-memory node. Its CID is computed once, on first use. Nodes reachable from more than one
/// tree are never changed: writers go through [`Subtree::make_mut`], which copies shared nodes.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) height: u8,
    /// Shared between versions of a node that differ only in their subtrees.
    pub(crate) leaves: Arc<Vec<Leaf>>,
    pub(crate) subtrees: Vec<Option<Subtree>>,
    cid: OnceLock<Cid>,
}

impl Node {
    /// A node; `subtrees.len()` must be `leaves.len() + 1`.
    pub(crate) fn new(height: u8, leaves: Vec<Leaf>, subtrees: Vec<Option<Subtree>>) -> Node {
        debug_assert_eq!(subtrees.len(), leaves.len() + 1);
        Node {
            height,
            leaves: Arc::new(leaves),
            subtrees,
            cid: OnceLock::new(),
        }
    }

    /// The same leaves with other subtrees (same count).
    pub(crate) fn with_subtrees(&self, subtrees: Vec<Option<Subtree>>) -> Node {
        debug_assert_eq!(subtrees.len(), self.leaves.len() + 1);
        Node {
            height: self.height,
            leaves: self.leaves.clone(),
            subtrees,
            cid: OnceLock::new(),
        }
    }

    /// The same node with each link replaced by a link to the same CID (a loaded subtree swapped
    /// for a stub, say): the cached CID stays valid, so it is kept.
    pub(crate) fn relinked(&self, subtrees: Vec<Option<Subtree>>) -> Node {
        debug_assert!(
            subtrees
                .iter()
                .map(|s| s.as_ref().map(Subtree::cid))
                .eq(self.subtrees.iter().map(|s| s.as_ref().map(Subtree::cid)))
        );
        Node {
            height: self.height,
            leaves: self.leaves.clone(),
            subtrees,
            cid: self.cid.clone(),
        }
    }

    /// The node of an empty tree.
    pub(crate) fn empty() -> Node {
        Node::new(0, Vec::new(), vec![None])
    }

    /// Whether the node holds nothing at all (no leaves, no subtree).
    pub(crate) fn is_empty(&self) -> bool {
        self.leaves.is_empty() && self.subtrees.iter().all(Option::is_none)
    }

    /// The node as a subtree link, or `None` if it is empty (empty nodes never appear below a root).
    pub(crate) fn into_subtree(self) -> Option<Subtree> {
        if self.is_empty() {
            None
        } else {
            Some(Subtree::Loaded(Arc::new(self)))
        }
    }

    /// Position of `key` among the leaves: `Ok(i)` if present, `Err(i)` = the gap it falls in.
    pub(crate) fn search(&self, key: &str) -> Result<usize, usize> {
        self.leaves.binary_search_by(|leaf| (*leaf.key).cmp(key))
    }

    pub(crate) fn cid(&self) -> Cid {
        *self
            .cid
            .get_or_init(|| atp_data::cid::cid_for_cbor(&self.to_data().to_cbor()))
    }

    /// The wire form (computes child CIDs as needed).
    pub(crate) fn to_data(&self) -> NodeData {
        let mut prev: &[u8] = &[];
        let entries = self
            .leaves
            .iter()
            .zip(self.subtrees.iter().skip(1))
            .map(|(leaf, right)| {
                let key = leaf.key.as_bytes();
                let prefix_len = common_prefix_len(prev, key);
                prev = key;
                EntryData {
                    prefix_len,
                    key_suffix: key[prefix_len..].to_vec(),
                    value: leaf.value,
                    right: right.as_ref().map(Subtree::cid),
                }
            })
            .collect();
        NodeData {
            left: self
                .subtrees
                .first()
                .and_then(|s| s.as_ref().map(Subtree::cid)),
            entries,
        }
    }

    /// The node's DAG-CBOR bytes.
    pub(crate) fn to_cbor(&self) -> Vec<u8> {
        self.to_data().to_cbor()
    }

    /// Decodes a stored node and checks it is canonical: hash matches `cid`, keys are strictly
    /// ascending with maximal prefix compression, every key has the node's height (`expected`, or
    /// the keys' own height for a root), and height-0 nodes have no subtrees.
    pub(crate) fn decode(cid: &Cid, bytes: &[u8], expected: Option<u8>) -> Result<Node, MstError> {
        let invalid = |reason: String| MstError::InvalidNode { cid: *cid, reason };
        if cid.codec() != atp_data::cid::DAG_CBOR || !atp_data::cid::matches(cid, bytes) {
            return Err(invalid("bytes do not match the CID".to_owned()));
        }
        let data = NodeData::from_cbor(bytes).map_err(invalid)?;
        let mut leaves: Vec<Leaf> = Vec::with_capacity(data.entries.len());
        let mut subtrees = Vec::with_capacity(data.entries.len() + 1);
        subtrees.push(data.left.map(Subtree::stub));
        let mut height = expected;
        for entry in &data.entries {
            let prev = leaves.last().map(|l| l.key.as_bytes()).unwrap_or_default();
            let key = decompress(prev, entry).map_err(invalid)?;
            let key_height = height_for_key(key.as_bytes());
            if *height.get_or_insert(key_height) != key_height {
                return Err(invalid(format!(
                    "key {key:?} does not belong at this height"
                )));
            }
            leaves.push(Leaf {
                key: key.into(),
                value: entry.value,
            });
            subtrees.push(entry.right.map(Subtree::stub));
        }
        let height = match (height, leaves.is_empty(), data.left.is_some()) {
            (Some(h), _, _) => h,
            (None, true, false) => 0,
            (None, _, _) => return Err(invalid("root has no entries but a subtree".to_owned())),
        };
        if height == 0 && subtrees.iter().any(Option::is_some) {
            return Err(invalid("node at height 0 has a subtree".to_owned()));
        }
        if expected.is_some() && leaves.is_empty() && data.left.is_none() {
            return Err(invalid("empty node below the root".to_owned()));
        }
        let node = Node::new(height, leaves, subtrees);
        let _ = node.cid.set(*cid);
        Ok(node)
    }
}

fn decompress(prev: &[u8], entry: &EntryData) -> Result<String, String> {
    let shared = prev
        .get(..entry.prefix_len)
        .ok_or("prefix longer than the previous key")?;
    let mut key = Vec::with_capacity(entry.prefix_len + entry.key_suffix.len());
    key.extend_from_slice(shared);
    key.extend_from_slice(&entry.key_suffix);
    if common_prefix_len(prev, &key) != entry.prefix_len {
        return Err("prefix length is not the shared prefix".to_owned());
    }
    if key.as_slice() <= prev && !prev.is_empty() {
        return Err("keys are not strictly ascending".to_owned());
    }
    if !is_plausible_key(&key) {
        return Err(format!("invalid key {:?}", String::from_utf8_lossy(&key)));
    }
    String::from_utf8(key).map_err(|_| "key is not UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_node_encoding() {
        let node = Node::empty();
        assert_eq!(node.to_cbor(), [0xa2, 0x61, b'e', 0x80, 0x61, b'l', 0xf6]);
        assert_eq!(
            node.cid().to_string(),
            "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"
        );
        let back = Node::decode(&node.cid(), &node.to_cbor(), None).unwrap();
        assert!(back.is_empty());
        assert!(Node::decode(&node.cid(), &node.to_cbor(), Some(0)).is_err());
    }

    #[test]
    fn decode_rejects_non_canonical_prefixes() {
        let value = atp_data::cid::cid_for_cbor(b"\xa0");
        let entry = |p: usize, k: &[u8]| EntryData {
            prefix_len: p,
            key_suffix: k.to_vec(),
            value,
            right: None,
        };
        let keys = [
            "com.example.record/3jqfcqzm3fo2j",
            "com.example.record/3jqfcqzm3fp2j",
        ];
        let heights: Vec<u8> = keys.iter().map(|k| height_for_key(k.as_bytes())).collect();
        let good = NodeData {
            left: None,
            entries: vec![entry(0, keys[0].as_bytes()), entry(29, b"p2j")],
        };
        let bytes = good.to_cbor();
        let cid = atp_data::cid::cid_for_cbor(&bytes);
        assert_eq!(NodeData::from_cbor(&bytes).unwrap(), good);
        let decoded = Node::decode(&cid, &bytes, None);
        if heights[0] == heights[1] {
            assert_eq!(decoded.unwrap().leaves.len(), 2);
        } else {
            assert!(decoded.is_err());
        }
        let short = NodeData {
            left: None,
            entries: vec![entry(0, keys[0].as_bytes()), entry(28, b"fp2j")],
        };
        let bytes = short.to_cbor();
        let err = Node::decode(&atp_data::cid::cid_for_cbor(&bytes), &bytes, None);
        assert!(matches!(err, Err(MstError::InvalidNode { .. })));
    }
}
