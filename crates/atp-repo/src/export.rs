//! Streaming CAR export of a stored repository (`com.atproto.sync.getRepo`).
//!
//! [`export_car`] writes the commit block first (the CAR's single root), then the MST nodes and
//! records in walk order (each node, then its left subtree, then each record and the subtree after
//! it: a depth-first preorder with records in key order; see [`crate::traverse`]). Blocks are read
//! in batches and written as they come, so memory does not grow with the repository, and the
//! tree is checked on the way: a store holding a broken repository fails the export instead of
//! producing a broken CAR. A record block shared by several keys is written once when the
//! repeats are close together (a bounded window), and again otherwise: CAR readers accept
//! repeated blocks.
//!
//! [`export_car_since`] writes the partial export `getRepo?since=rev`: the commit, then every
//! block stored with a newer revision ([`BlockStore::blocks_since_page`]), page by page.
//!
//! Both write to any [`std::io::Write`]; pass a buffered writer (a `BufWriter<File>`, a `Vec`, or
//! an adapter that forwards chunks to an async body). For full control over pacing, drive a
//! [`Traversal`] and a [`CarWriter`] directly.
//!
//! When the whole repository fits in memory, [`ArenaExport`] does the same from a [`BlockArena`]
//! (every block of the repository read at once, e.g. by one sequential scan of a database):
//! [`ArenaExport::plan`] walks and checks the tree first, without writing, so a broken repository
//! is refused before the first byte goes out; [`ArenaExport::write`] then only copies bytes.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Write;

use atp_data::Cid;
use atp_data::car::{CarError, CarWriter};
use atp_syntax::Tid;

use crate::blockstore::{BlockStore, StoreError};
use crate::commit::SignedCommit;
use crate::traverse::{ScannedNode, Traversal, Visit, decode_node, scan_canonical, scan_node};
use crate::verify::{BlockKind, VerifyError, load_commit};

/// Blocks per [`BlockStore::blocks_since_page`] call.
const SINCE_PAGE: usize = 1000;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The repository in the store is incomplete or invalid (or the store failed).
    #[error("cannot export the repository: {0}")]
    Repo(#[from] VerifyError),
    /// Writing the CAR failed.
    #[error("writing the CAR failed: {0}")]
    Write(#[source] CarError),
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// Blocks written (the commit included).
    pub blocks: u64,
    /// Bytes written (the whole CAR).
    pub bytes: u64,
    /// MST nodes written.
    pub mst_nodes: u64,
    /// Records in the tree (a record block written once for several keys counts each time).
    pub records: u64,
}

/// Writes the full repository whose commit block is `commit` as a CAR to `out` (see the module
/// docs), returning the writer and what was written.
pub async fn export_car<S: BlockStore, W: Write>(
    store: &S,
    commit: &Cid,
    out: W,
) -> Result<(W, ExportStats), ExportError> {
    let (signed, commit_bytes) = load_commit(store, commit).await?;
    let mut car = CarWriter::new(out, &[*commit]).map_err(ExportError::Write)?;
    car.write_block(commit, &commit_bytes)
        .map_err(ExportError::Write)?;
    let mut stats = ExportStats {
        blocks: 1,
        ..ExportStats::default()
    };
    let mut walk = Traversal::new(store, *signed.data());
    while let Some(visit) = walk.next().await? {
        let (cid, bytes) = match visit {
            Visit::Node { cid, bytes, .. } => {
                stats.mst_nodes += 1;
                (cid, bytes)
            }
            Visit::Record { cid, bytes, .. } => {
                stats.records += 1;
                match bytes {
                    Some(bytes) => (cid, bytes),
                    None => continue,
                }
            }
        };
        car.write_block(&cid, &bytes).map_err(ExportError::Write)?;
        stats.blocks += 1;
    }
    stats.bytes = car.bytes_written();
    let out = car.finish().map_err(ExportError::Write)?;
    Ok((out, stats))
}

/// Writes the partial export of the repository at `commit` since revision `since`: the commit
/// block first (the CAR's root), then every other block the store holds with a revision newer
/// than `since`, in the store's page order. Nothing is checked beyond the commit block.
pub async fn export_car_since<S: BlockStore, W: Write>(
    store: &S,
    commit: &Cid,
    since: &Tid,
    out: W,
) -> Result<(W, ExportStats), ExportError> {
    let (_, commit_bytes) = load_commit(store, commit).await?;
    let mut car = CarWriter::new(out, &[*commit]).map_err(ExportError::Write)?;
    car.write_block(commit, &commit_bytes)
        .map_err(ExportError::Write)?;
    let mut stats = ExportStats {
        blocks: 1,
        ..ExportStats::default()
    };
    let mut after: Option<Cid> = None;
    loop {
        let page = store
            .blocks_since_page(since, after.as_ref(), SINCE_PAGE)
            .await
            .map_err(VerifyError::from)?;
        let full = page.len() >= SINCE_PAGE;
        for (cid, bytes) in &page {
            if cid != commit {
                car.write_block(cid, bytes).map_err(ExportError::Write)?;
                stats.blocks += 1;
            }
        }
        match page.last() {
            Some((last, _)) if full => after = Some(*last),
            _ => break,
        }
    }
    stats.bytes = car.bytes_written();
    let out = car.finish().map_err(ExportError::Write)?;
    Ok((out, stats))
}

/// The hash of a binary CID in a [`BlockArena`]: its last eight bytes (the end of its digest,
/// already uniformly random).
#[derive(Debug, Default, Clone, Copy)]
struct TailHasher(u64);

impl Hasher for TailHasher {
    fn write(&mut self, _: &[u8]) {}

    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

fn tail(cid: &[u8]) -> u64 {
    let mut word = [0; 8];
    let n = cid.len().min(8);
    word[8 - n..].copy_from_slice(&cid[cid.len() - n..]);
    u64::from_le_bytes(word)
}

/// Blocks held in one buffer, looked up by binary CID: a whole repository read at once for
/// [`ArenaExport`]. Each block is kept as its CID's bytes followed by its own, ready to be
/// written as a CAR section. A CID added twice keeps its first bytes.
#[derive(Debug, Default)]
pub struct BlockArena {
    data: Vec<u8>,
    /// By the tail of the binary CID (see [`tail`]); CIDs whose tails collide go to `overflow`.
    index: HashMap<u64, Slot, BuildHasherDefault<TailHasher>>,
    overflow: HashMap<Vec<u8>, Slot>,
}

/// A block of a [`BlockArena`]: its number (in insertion order), and where it sits in the
/// buffer: its CID's bytes, then the block.
#[derive(Debug, Clone, Copy)]
struct Slot {
    start: usize,
    len: u32,
    cid_len: u16,
    id: u32,
}

impl Slot {
    fn cid<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        data.get(self.start..self.start + usize::from(self.cid_len))
            .unwrap_or_default()
    }

    fn block<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        let start = self.start + usize::from(self.cid_len);
        data.get(start..start + self.len as usize)
            .unwrap_or_default()
    }

    /// The CID's bytes followed by the block's.
    fn section<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        let end = self.start + usize::from(self.cid_len) + self.len as usize;
        data.get(self.start..end).unwrap_or_default()
    }
}

impl BlockArena {
    /// An empty arena.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty arena with room for `blocks` blocks of `bytes` bytes in all.
    pub fn with_capacity(blocks: usize, bytes: usize) -> Self {
        BlockArena {
            data: Vec::with_capacity(bytes + blocks * 36),
            index: HashMap::with_capacity_and_hasher(blocks, BuildHasherDefault::default()),
            overflow: HashMap::new(),
        }
    }

    /// Adds a block (its bytes are not checked against the CID here; the export checks the
    /// commit and every MST node, and trusts record blocks as [`Traversal`] does).
    pub fn insert(&mut self, cid: &Cid, bytes: &[u8]) {
        self.insert_raw(&cid.to_bytes(), bytes);
    }

    /// Adds a block by its CID's binary form as stored by a block store, which must be the
    /// canonical one (`Cid::to_bytes`): it is not parsed again. Blocks of 4 GiB or more are not
    /// kept.
    pub fn insert_raw(&mut self, cid: &[u8], bytes: &[u8]) {
        let (Ok(cid_len), Ok(len), Ok(id)) = (
            u16::try_from(cid.len()),
            u32::try_from(bytes.len()),
            u32::try_from(self.len()),
        ) else {
            return;
        };
        if cid.is_empty() || self.find_raw(cid).is_some() {
            return;
        }
        let slot = Slot {
            start: self.data.len(),
            len,
            cid_len,
            id,
        };
        self.data.extend_from_slice(cid);
        self.data.extend_from_slice(bytes);
        match self.index.entry(tail(cid)) {
            std::collections::hash_map::Entry::Vacant(entry) => {
                entry.insert(slot);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.overflow.insert(cid.to_vec(), slot);
            }
        }
    }

    /// The block with this binary CID.
    fn find_raw(&self, cid: &[u8]) -> Option<Slot> {
        if cid.is_empty() {
            return None;
        }
        let slot = *self.index.get(&tail(cid))?;
        if slot.cid(&self.data) == cid {
            return Some(slot);
        }
        self.overflow.get(cid).copied()
    }

    /// The bytes of a block.
    pub fn get(&self, cid: &Cid) -> Option<&[u8]> {
        Some(self.find_raw(&cid.to_bytes())?.block(&self.data))
    }

    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.index.len() + self.overflow.len()
    }

    /// Whether there is no block.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Total bytes of the blocks with their CIDs.
    pub fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// A checked full export of a repository held in a [`BlockArena`]: the CAR's blocks in the
/// order of [`export_car`] (commit, then nodes and records in walk order), each block once.
#[derive(Debug)]
pub struct ArenaExport {
    commit: Cid,
    /// The blocks, in CAR order.
    order: Vec<Slot>,
    stats: ExportStats,
}

/// A link the walk will follow: a block of the arena, or a CID it lacks.
#[derive(Debug, Clone, Copy)]
enum Target {
    Found(Slot),
    Missing(Cid),
}

/// What the walk keeps for later: a node to read, or a record whose key sits at `key` in the
/// key stack, found in the node `node`.
enum Step {
    Node {
        target: Target,
        height: Option<u8>,
    },
    Record {
        target: Target,
        node: Slot,
        key: std::ops::Range<usize>,
    },
}

/// The CID of an arena block, for messages and the slow paths.
fn cid_of(arena: &BlockArena, slot: Slot) -> Result<Cid, VerifyError> {
    atp_data::cid::from_bytes(slot.cid(&arena.data)).map_err(|e| {
        VerifyError::Store(StoreError::Backend {
            message: format!("a stored CID is invalid: {e}"),
        })
    })
}

/// Whether a binary CID is CIDv1, DAG-CBOR, SHA-256 (`01 71 12 20` and 32 digest bytes): the
/// form of every repository node, checked here without parsing.
fn plain_node_cid(raw: &[u8]) -> Option<&[u8]> {
    match raw {
        [0x01, 0x71, 0x12, 0x20, digest @ ..] if digest.len() == 32 => Some(digest),
        _ => None,
    }
}

/// Reads the node `id` (hash, canonical form, keys) into `node`: the fast path for plain CIDs
/// and canonical bytes, else the strict decoder for the precise error.
fn read_node(
    arena: &BlockArena,
    id: Slot,
    height: Option<u8>,
    node: &mut ScannedNode,
) -> Result<(), VerifyError> {
    let bytes = id.block(&arena.data);
    if let Some(digest) = plain_node_cid(id.cid(&arena.data)) {
        use sha2::Digest;
        if sha2::Sha256::digest(bytes)[..] != *digest {
            return Err(VerifyError::HashMismatch {
                cid: cid_of(arena, id)?,
            });
        }
        node.clear();
        if scan_canonical(bytes, height, node).is_some() {
            return Ok(());
        }
    }
    let cid = cid_of(arena, id)?;
    if !atp_data::cid::matches(&cid, bytes) {
        return Err(VerifyError::HashMismatch { cid });
    }
    scan_node(&cid, bytes, height, node)
}

/// Resolves a link of the node `id`: a block of the arena, or a valid CID it lacks; a link that
/// is not a CID makes the node invalid (the strict decoder says why).
fn resolve(
    arena: &BlockArena,
    raw: &[u8],
    id: Slot,
    height: Option<u8>,
) -> Result<Target, VerifyError> {
    if let Some(found) = arena.find_raw(raw) {
        return Ok(Target::Found(found));
    }
    match atp_data::cid::from_bytes(raw) {
        Ok(cid) => Ok(Target::Missing(cid)),
        Err(e) => {
            let cid = cid_of(arena, id)?;
            decode_node(&cid, id.block(&arena.data).to_vec(), height)?;
            Err(VerifyError::BadMstNode {
                cid,
                reason: format!("invalid CID link: {e}").into(),
            })
        }
    }
}

impl ArenaExport {
    /// Walks the tree of the commit `commit` through `arena` and checks it as [`export_car`]
    /// does (commit block, node hashes and canonical form, key order within and across nodes,
    /// every block present), without writing anything.
    pub fn plan(arena: &BlockArena, commit: &Cid) -> Result<ArenaExport, ExportError> {
        let commit_id = arena
            .find_raw(&commit.to_bytes())
            .ok_or(VerifyError::MissingBlock {
                cid: *commit,
                kind: BlockKind::Commit,
            })?;
        let signed = check_commit(commit, commit_id.block(&arena.data))?;
        let mut order = Vec::with_capacity(arena.len());
        let mut written = vec![false; arena.len()];
        // Whether the block is new to the CAR (and now part of it).
        let mut first = |slot: Slot| {
            written
                .get_mut(slot.id as usize)
                .is_some_and(|w| !std::mem::replace(w, true))
        };
        first(commit_id);
        order.push(commit_id);
        let mut stats = ExportStats {
            blocks: 1,
            ..ExportStats::default()
        };
        // Keys of pending records, as a stack: a record's key is the last one pushed when the
        // record is popped (everything pushed after it was popped before it).
        let mut keys: Vec<u8> = Vec::with_capacity(4096);
        let mut last_key: Vec<u8> = Vec::with_capacity(256);
        let mut have_last = false;
        let mut node = ScannedNode::default();
        let root = *signed.data();
        let mut stack = vec![Step::Node {
            target: match arena.find_raw(&root.to_bytes()) {
                Some(id) => Target::Found(id),
                None => Target::Missing(root),
            },
            height: None,
        }];
        while let Some(step) = stack.pop() {
            match step {
                Step::Node { target, height } => {
                    let id = match target {
                        Target::Found(id) => id,
                        Target::Missing(cid) => {
                            return Err(VerifyError::MissingBlock {
                                cid,
                                kind: BlockKind::MstNode,
                            }
                            .into());
                        }
                    };
                    read_node(arena, id, height, &mut node)?;
                    stats.mst_nodes += 1;
                    if first(id) {
                        order.push(id);
                        stats.blocks += 1;
                    }
                    // Push so that they pop in walk order: left subtree, then each record and
                    // the subtree after it.
                    let child = node.height.checked_sub(1);
                    for (key, value, right) in node.entries.iter().rev() {
                        if let Some(sub) = right {
                            stack.push(Step::Node {
                                target: resolve(arena, &node.cids[sub.clone()], id, height)?,
                                height: child,
                            });
                        }
                        let start = keys.len();
                        keys.extend_from_slice(&node.keys[key.clone()]);
                        stack.push(Step::Record {
                            target: resolve(arena, &node.cids[value.clone()], id, height)?,
                            node: id,
                            key: start..keys.len(),
                        });
                    }
                    if let Some(sub) = &node.left {
                        stack.push(Step::Node {
                            target: resolve(arena, &node.cids[sub.clone()], id, height)?,
                            height: child,
                        });
                    }
                }
                Step::Record {
                    target,
                    node: parent,
                    key,
                } => {
                    let this = &keys[key.clone()];
                    if have_last && this <= last_key.as_slice() {
                        return Err(VerifyError::BadMstOrder {
                            cid: cid_of(arena, parent)?,
                            reason: format!(
                                "key {:?} does not sort after the previous key {:?}",
                                String::from_utf8_lossy(this),
                                String::from_utf8_lossy(&last_key)
                            )
                            .into(),
                        }
                        .into());
                    }
                    last_key.clear();
                    last_key.extend_from_slice(this);
                    have_last = true;
                    keys.truncate(key.start);
                    stats.records += 1;
                    match target {
                        Target::Found(id) => {
                            if first(id) {
                                order.push(id);
                                stats.blocks += 1;
                            }
                        }
                        Target::Missing(cid) => {
                            return Err(VerifyError::MissingBlock {
                                cid,
                                kind: BlockKind::Record {
                                    key: String::from_utf8_lossy(&last_key).into(),
                                },
                            }
                            .into());
                        }
                    }
                }
            }
        }
        Ok(ArenaExport {
            commit: *commit,
            order,
            stats,
        })
    }

    /// What the export holds (`bytes` is filled in by [`ArenaExport::write`]).
    pub fn stats(&self) -> ExportStats {
        self.stats
    }

    /// Writes the planned CAR to `out`, returning the writer and what was written. `arena`
    /// must be the one the plan was made from.
    pub fn write<W: Write>(
        &self,
        arena: &BlockArena,
        out: W,
    ) -> Result<(W, ExportStats), ExportError> {
        let mut car = CarWriter::new(out, &[self.commit]).map_err(ExportError::Write)?;
        for slot in &self.order {
            car.write_section(slot.section(&arena.data))
                .map_err(ExportError::Write)?;
        }
        let mut stats = self.stats;
        stats.bytes = car.bytes_written();
        let out = car.finish().map_err(ExportError::Write)?;
        Ok((out, stats))
    }
}

/// Writes the full repository whose commit block is `commit` from blocks in memory: the same CAR
/// as [`export_car`] (see [`ArenaExport`]).
pub fn export_car_from_arena<W: Write>(
    arena: &BlockArena,
    commit: &Cid,
    out: W,
) -> Result<(W, ExportStats), ExportError> {
    ArenaExport::plan(arena, commit)?.write(arena, out)
}

/// The checks of `verify::load_commit` on bytes in hand.
fn check_commit(cid: &Cid, bytes: &[u8]) -> Result<SignedCommit, VerifyError> {
    if !atp_data::cid::matches(cid, bytes) {
        return Err(VerifyError::HashMismatch { cid: *cid });
    }
    let bad = |reason: String| VerifyError::BadCommit {
        cid: *cid,
        reason: reason.into(),
    };
    if cid.codec() != atp_data::cid::DAG_CBOR {
        return Err(bad("the commit CID is not a DAG-CBOR CID".to_owned()));
    }
    SignedCommit::from_cbor(bytes).map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arena_tells_apart_cids_whose_tails_collide() {
        let mut arena = BlockArena::new();
        let a = [[1u8; 28].as_slice(), &[7; 8]].concat();
        let b = [[2u8; 28].as_slice(), &[7; 8]].concat();
        arena.insert_raw(&a, b"first");
        arena.insert_raw(&b, b"second");
        arena.insert_raw(&a, b"ignored: already there");
        assert_eq!(arena.len(), 2);
        let (ia, ib) = (arena.find_raw(&a).unwrap(), arena.find_raw(&b).unwrap());
        assert_eq!(ia.block(&arena.data), b"first");
        assert_eq!(ib.block(&arena.data), b"second");
        assert_eq!(ib.section(&arena.data), [b.as_slice(), b"second"].concat());
        assert_eq!((ia.id, ib.id), (0, 1));
        assert!(
            arena
                .find_raw(&[[3u8; 28].as_slice(), &[7; 8]].concat())
                .is_none()
        );
        assert!(arena.find_raw(b"").is_none());
        arena.insert_raw(b"", b"no CID");
        assert_eq!(arena.len(), 2);
        // Short CIDs hash by what they have.
        arena.insert_raw(b"xy", b"short");
        assert_eq!(arena.get_raw_for_test(b"xy"), Some(&b"short"[..]));
    }

    impl BlockArena {
        fn get_raw_for_test(&self, cid: &[u8]) -> Option<&[u8]> {
            Some(self.find_raw(cid)?.block(&self.data))
        }
    }
}
