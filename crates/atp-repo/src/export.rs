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

use std::io::Write;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use atp_data::Cid;
use atp_data::car::{CarError, CarWriter};
use atp_syntax::Tid;

use crate::blockstore::{BlockStore, StoreError};
use crate::commit::SignedCommit;
use crate::traverse::{ScannedNode, Traversal, Visit, decode_node, scan_canonical, scan_node};
use crate::verify::{BlockKind, VerifyError, load_commit};

mod arena;

use arena::BlockId;
pub use arena::{ArenaPart, BlockArena};

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

/// A checked full export of a repository held in a [`BlockArena`]: the CAR's blocks in the
/// order of [`export_car`] (commit, then nodes and records in walk order), each block once.
///
/// Large trees are walked on up to four threads: the top of the tree is opened into subtrees
/// (at least 32 of them, when it has that many); the calling thread takes
/// them from the front, walking each straight into the output, while helper threads take them
/// from the back into lists the calling thread copies out when it gets there. The key order
/// across subtrees is checked, and repeated blocks dropped, as the pieces are joined, so the
/// CAR, and the error reported for a broken repository, are those of a walk on one thread.
#[derive(Debug)]
pub struct ArenaExport {
    commit: Cid,
    /// The blocks, in CAR order.
    order: Vec<BlockId>,
    stats: ExportStats,
}

/// Blocks from which [`ArenaExport::plan`] splits the walk across threads.
const PARALLEL_MIN_BLOCKS: usize = 2048;
/// Subtrees the top of the tree is opened into, at least (when it has that many), so that
/// threads taking them in turn finish together.
const MIN_TASKS: usize = 32;
/// Levels of the tree opened at most before the walk is split.
const MAX_OPEN_LEVELS: usize = 8;
/// Most threads one plan uses.
const MAX_THREADS: usize = 4;

/// A link the walk will follow: a block of the arena, or a CID it lacks.
#[derive(Debug, Clone, Copy)]
enum Target {
    Found(BlockId),
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
        node: BlockId,
        key: Range<usize>,
    },
}

/// An entry of an opened node, in walk order: a subtree, or a record whose key sits at `key` in
/// the node's keys.
enum Child {
    Subtree(Target, Option<u8>),
    Record(Target, Range<usize>),
}

/// Buffers reused from node to node.
#[derive(Default)]
struct Scratch {
    node: ScannedNode,
    children: Vec<Child>,
    /// The node's links in walk order, and what they resolved to.
    links: Vec<Range<usize>>,
    firsts: Vec<(usize, u64)>,
    found: Vec<Option<BlockId>>,
}

/// The CID of an arena block, for messages and the slow paths.
fn cid_of(arena: &BlockArena, id: BlockId) -> Result<Cid, VerifyError> {
    atp_data::cid::from_bytes(arena.cid_bytes(id)).map_err(|e| {
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
    id: BlockId,
    height: Option<u8>,
    node: &mut ScannedNode,
) -> Result<(), VerifyError> {
    let bytes = arena.block(id);
    if let Some(digest) = plain_node_cid(arena.cid_bytes(id)) {
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

/// A link of the node `id` that is not in the arena: a valid CID it lacks; a link that is not
/// a CID makes the node invalid (the strict decoder says why).
fn missing(
    arena: &BlockArena,
    raw: &[u8],
    id: BlockId,
    height: Option<u8>,
) -> Result<Target, VerifyError> {
    match atp_data::cid::from_bytes(raw) {
        Ok(cid) => Ok(Target::Missing(cid)),
        Err(e) => {
            let cid = cid_of(arena, id)?;
            decode_node(&cid, arena.block(id).to_vec(), height)?;
            Err(VerifyError::BadMstNode {
                cid,
                reason: format!("invalid CID link: {e}").into(),
            })
        }
    }
}

/// Reads and checks the node `id` (expected at `height`, if known) into `scratch`: its keys in
/// `scratch.node`, its left subtree, records and right subtrees in `scratch.children`.
fn open_node(
    arena: &BlockArena,
    id: BlockId,
    height: Option<u8>,
    scratch: &mut Scratch,
) -> Result<(), VerifyError> {
    let Scratch {
        node,
        children,
        links,
        firsts,
        found,
    } = scratch;
    read_node(arena, id, height, node)?;
    // The links in walk order: left, then each value and the subtree after it.
    links.clear();
    links.extend(node.left.clone());
    for (_, value, right) in &node.entries {
        links.push(value.clone());
        links.extend(right.clone());
    }
    arena.find_many(&node.cids, links, firsts, found);
    let mut targets = links
        .iter()
        .zip(found.iter())
        .map(|(link, found)| match found {
            Some(block) => Ok(Target::Found(*block)),
            None => missing(arena, &node.cids[link.clone()], id, height),
        });
    let mut next = || {
        targets.next().unwrap_or_else(|| {
            Err(VerifyError::Store(StoreError::Backend {
                message: "export: a link was not resolved".to_owned(),
            }))
        })
    };
    children.clear();
    let child = node.height.checked_sub(1);
    if node.left.is_some() {
        children.push(Child::Subtree(next()?, child));
    }
    for (key, _, right) in &node.entries {
        children.push(Child::Record(next()?, key.clone()));
        if right.is_some() {
            children.push(Child::Subtree(next()?, child));
        }
    }
    Ok(())
}

/// Where a walk puts what it finds, in walk order.
trait Sink {
    /// A node, read and checked.
    fn node(&mut self, arena: &BlockArena, id: BlockId) -> Result<(), ExportError>;
    /// A record of the node `node` under `key`.
    fn record(
        &mut self,
        arena: &BlockArena,
        key: &[u8],
        node: BlockId,
        target: Target,
    ) -> Result<(), ExportError>;
}

/// What the walk of one subtree produced, kept for later.
#[derive(Default)]
struct Walked {
    /// Its blocks in walk order (a record block once per key).
    order: Vec<BlockId>,
    mst_nodes: u64,
    records: u64,
    /// The first record's key, and the node holding it.
    first: Option<(Vec<u8>, BlockId)>,
    /// The last record's key.
    last_key: Vec<u8>,
}

impl Sink for Walked {
    fn node(&mut self, _: &BlockArena, id: BlockId) -> Result<(), ExportError> {
        self.mst_nodes += 1;
        self.order.push(id);
        Ok(())
    }

    fn record(
        &mut self,
        arena: &BlockArena,
        key: &[u8],
        node: BlockId,
        target: Target,
    ) -> Result<(), ExportError> {
        if self.first.is_none() {
            self.first = Some((key.to_vec(), node));
        } else if key <= self.last_key.as_slice() {
            return Err(out_of_order(arena, node, key, &self.last_key).into());
        }
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        self.records += 1;
        match target {
            Target::Found(id) => {
                self.order.push(id);
                Ok(())
            }
            Target::Missing(cid) => Err(missing_record(cid, key)),
        }
    }
}

/// The error for a record block the arena lacks.
fn missing_record(cid: Cid, key: &[u8]) -> ExportError {
    VerifyError::MissingBlock {
        cid,
        kind: BlockKind::Record {
            key: String::from_utf8_lossy(key).into(),
        },
    }
    .into()
}

/// The `BadMstOrder` error for `key` found in `node` after `previous`.
fn out_of_order(arena: &BlockArena, node: BlockId, key: &[u8], previous: &[u8]) -> VerifyError {
    match cid_of(arena, node) {
        Ok(cid) => VerifyError::BadMstOrder {
            cid,
            reason: format!(
                "key {:?} does not sort after the previous key {:?}",
                String::from_utf8_lossy(key),
                String::from_utf8_lossy(previous)
            )
            .into(),
        },
        Err(e) => e,
    }
}

/// Walks the subtree at `target` in walk order into `sink`, checking it (node hashes and form,
/// key order, every block present); stops at the first problem.
fn walk_subtree<S: Sink>(
    arena: &BlockArena,
    target: Target,
    height: Option<u8>,
    sink: &mut S,
    scratch: &mut Scratch,
) -> Result<(), ExportError> {
    // Keys of pending records, as a stack: a record's key is the last one pushed when the
    // record is popped (everything pushed after it was popped before it).
    let mut keys: Vec<u8> = Vec::with_capacity(4096);
    let mut stack = vec![Step::Node { target, height }];
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
                open_node(arena, id, height, scratch)?;
                sink.node(arena, id)?;
                // Push so that they pop in walk order.
                for child in scratch.children.iter().rev() {
                    match child {
                        Child::Subtree(target, height) => stack.push(Step::Node {
                            target: *target,
                            height: *height,
                        }),
                        Child::Record(target, key) => {
                            let start = keys.len();
                            keys.extend_from_slice(&scratch.node.keys[key.clone()]);
                            stack.push(Step::Record {
                                target: *target,
                                node: id,
                                key: start..keys.len(),
                            });
                        }
                    }
                }
            }
            Step::Record { target, node, key } => {
                sink.record(arena, &keys[key.clone()], node, target)?;
                keys.truncate(key.start);
            }
        }
    }
    Ok(())
}

/// A piece of the top of the tree, in walk order.
enum Item {
    /// An opened node (read, checked, counted).
    Node(BlockId),
    /// A record of an opened node; its key sits at `key` in the top's keys.
    Record {
        target: Target,
        node: BlockId,
        key: Range<usize>,
    },
    /// A subtree left for a thread to walk.
    Subtree { target: Target, height: Option<u8> },
    /// Where the walk fails.
    Failed(VerifyError),
}

/// The top of the tree at `root`, opened level by level until it holds at least `want`
/// subtrees (or no more, or [`MAX_OPEN_LEVELS`] levels): its items in walk order, the keys
/// of its records, and the nodes opened.
fn open_top(
    arena: &BlockArena,
    root: Target,
    want: usize,
    scratch: &mut Scratch,
) -> (Vec<Item>, Vec<u8>, u64) {
    let mut items = vec![Item::Subtree {
        target: root,
        height: None,
    }];
    let mut keys = Vec::new();
    let mut opened = 0;
    for _ in 0..MAX_OPEN_LEVELS {
        let subtrees = items
            .iter()
            .filter(|i| {
                matches!(
                    i,
                    Item::Subtree {
                        target: Target::Found(_),
                        ..
                    }
                )
            })
            .count();
        if subtrees == 0 || subtrees >= want {
            break;
        }
        let mut next = Vec::with_capacity(items.len() * 8);
        let mut failed = false;
        for item in items {
            let (id, height) = match item {
                Item::Subtree {
                    target: Target::Found(id),
                    height,
                } if !failed => (id, height),
                other => {
                    next.push(other);
                    continue;
                }
            };
            if let Err(e) = open_node(arena, id, height, scratch) {
                // Nothing after this point of the walk matters any more.
                next.push(Item::Failed(e));
                failed = true;
                continue;
            }
            opened += 1;
            next.push(Item::Node(id));
            for child in &scratch.children {
                next.push(match child {
                    Child::Subtree(target, height) => Item::Subtree {
                        target: *target,
                        height: *height,
                    },
                    Child::Record(target, key) => {
                        let start = keys.len();
                        keys.extend_from_slice(&scratch.node.keys[key.clone()]);
                        Item::Record {
                            target: *target,
                            node: id,
                            key: start..keys.len(),
                        }
                    }
                });
            }
        }
        items = next;
    }
    (items, keys, opened)
}

/// A walked subtree and the error that stopped its walk, if any.
type TaskResult = (Walked, Option<ExportError>);

/// The subtrees of the top of the tree, shared by the joining thread, which takes them from the
/// front (walking each straight into the output), and helper threads, which take them from the
/// back (walking each into a [`Walked`] the joining thread copies out when it gets there).
struct Board {
    tasks: Vec<(Target, Option<u8>)>,
    /// Who took each task: [`FREE`], [`JOINER`] or [`HELPER`].
    taken: Vec<AtomicU8>,
    /// The next task a helper takes, plus one (helpers count down).
    back: AtomicUsize,
    results: Mutex<Vec<Option<TaskResult>>>,
    ready: Condvar,
    /// Set when the walk failed: helpers start no new task.
    stop: AtomicBool,
}

const FREE: u8 = 0;
const JOINER: u8 = 1;
const HELPER: u8 = 2;

impl Board {
    fn new(tasks: Vec<(Target, Option<u8>)>) -> Board {
        let n = tasks.len();
        Board {
            taken: (0..n).map(|_| AtomicU8::new(FREE)).collect(),
            back: AtomicUsize::new(n),
            results: Mutex::new((0..n).map(|_| None).collect()),
            ready: Condvar::new(),
            stop: AtomicBool::new(false),
            tasks,
        }
    }

    fn results(&self) -> std::sync::MutexGuard<'_, Vec<Option<TaskResult>>> {
        self.results.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A helper: walks tasks from the back until it meets the joining thread.
    fn help(&self, arena: &BlockArena) {
        let mut scratch = Scratch::default();
        while !self.stop.load(Ordering::Relaxed) {
            let Some(i) = self
                .back
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
                .ok()
                .map(|b| b - 1)
            else {
                return;
            };
            let (Some(&(target, height)), Some(taken)) = (self.tasks.get(i), self.taken.get(i))
            else {
                return;
            };
            if taken
                .compare_exchange(FREE, HELPER, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                return;
            }
            let mut walked = Walked::default();
            let walk = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                walk_subtree(arena, target, height, &mut walked, &mut scratch).err()
            }));
            let error = walk.unwrap_or_else(|_| {
                Some(ExportError::Repo(VerifyError::Store(StoreError::Backend {
                    message: "the export's walk failed".to_owned(),
                })))
            });
            if error.is_some() {
                self.stop.store(true, Ordering::Relaxed);
            }
            if let Some(slot) = self.results().get_mut(i) {
                *slot = Some((walked, error));
            }
            self.ready.notify_all();
        }
    }

    /// For the joining thread: `None` if task `i` is now its own to walk, else the helper's
    /// result (waited for).
    fn claim(&self, i: usize) -> Option<TaskResult> {
        let taken = self.taken.get(i)?;
        if taken
            .compare_exchange(FREE, JOINER, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return None;
        }
        let mut results = self.results();
        loop {
            if let Some(result) = results.get_mut(i).and_then(Option::take) {
                return Some(result);
            }
            results = self.ready.wait(results).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Where the joined export goes: a list of blocks (a plan) or a CAR being written.
trait Output {
    fn put(&mut self, arena: &BlockArena, id: BlockId) -> Result<(), ExportError>;
}

impl Output for Vec<BlockId> {
    fn put(&mut self, _: &BlockArena, id: BlockId) -> Result<(), ExportError> {
        self.push(id);
        Ok(())
    }
}

impl<W: Write> Output for CarWriter<W> {
    fn put(&mut self, arena: &BlockArena, id: BlockId) -> Result<(), ExportError> {
        self.write_section(arena.section(id))
            .map_err(ExportError::Write)
    }
}

/// The export in walk order: each block once, keys ascending across pieces.
struct Joiner<O> {
    out: O,
    written: Vec<u64>,
    last_key: Option<Vec<u8>>,
    stats: ExportStats,
}

impl<O: Output> Joiner<O> {
    fn new(arena: &BlockArena, out: O) -> Self {
        Joiner {
            out,
            written: vec![0u64; arena.id_bound().div_ceil(64)],
            last_key: None,
            stats: ExportStats::default(),
        }
    }

    /// Puts a block out unless it already is.
    fn put(&mut self, arena: &BlockArena, id: BlockId) -> Result<(), ExportError> {
        let (word, bit) = (id as usize / 64, 1u64 << (id % 64));
        if let Some(w) = self.written.get_mut(word)
            && *w & bit == 0
        {
            *w |= bit;
            self.stats.blocks += 1;
            return self.out.put(arena, id);
        }
        Ok(())
    }

    /// Checks that `key` comes after the last key.
    fn after_last(&self, arena: &BlockArena, key: &[u8], node: BlockId) -> Result<(), ExportError> {
        match &self.last_key {
            Some(last) if key <= last.as_slice() => {
                Err(out_of_order(arena, node, key, last).into())
            }
            _ => Ok(()),
        }
    }

    /// A subtree a helper walked.
    fn join(&mut self, arena: &BlockArena, (walked, error): TaskResult) -> Result<(), ExportError> {
        if let Some((first, node)) = &walked.first {
            self.after_last(arena, first, *node)?;
            self.last_key = Some(walked.last_key);
        }
        if let Some(error) = error {
            return Err(error);
        }
        for &id in &walked.order {
            self.put(arena, id)?;
        }
        self.stats.mst_nodes += walked.mst_nodes;
        self.stats.records += walked.records;
        Ok(())
    }

    /// Joins the top's items, walking the subtrees the helpers have not taken.
    fn run(
        &mut self,
        arena: &BlockArena,
        items: Vec<Item>,
        top_keys: &[u8],
        board: &Board,
        scratch: &mut Scratch,
    ) -> Result<(), ExportError> {
        let mut task = 0;
        for item in items {
            match item {
                Item::Node(id) => {
                    self.stats.mst_nodes += 1;
                    self.put(arena, id)?;
                }
                Item::Record { target, node, key } => {
                    self.record(arena, &top_keys[key], node, target)?;
                }
                Item::Subtree { target, height } => {
                    match board.claim(task) {
                        None => walk_subtree(arena, target, height, self, scratch)?,
                        Some(result) => self.join(arena, result)?,
                    }
                    task += 1;
                }
                Item::Failed(error) => return Err(error.into()),
            }
        }
        Ok(())
    }
}

impl<O: Output> Sink for Joiner<O> {
    fn node(&mut self, arena: &BlockArena, id: BlockId) -> Result<(), ExportError> {
        self.stats.mst_nodes += 1;
        self.put(arena, id)
    }

    fn record(
        &mut self,
        arena: &BlockArena,
        key: &[u8],
        node: BlockId,
        target: Target,
    ) -> Result<(), ExportError> {
        self.after_last(arena, key, node)?;
        match &mut self.last_key {
            Some(last) => {
                last.clear();
                last.extend_from_slice(key);
            }
            None => self.last_key = Some(key.to_vec()),
        }
        self.stats.records += 1;
        match target {
            Target::Found(id) => self.put(arena, id),
            Target::Missing(cid) => Err(missing_record(cid, key)),
        }
    }
}

/// Threads a plan may use: the machine's, at most [`MAX_THREADS`].
fn default_threads() -> usize {
    arena::machine_threads().min(MAX_THREADS)
}

/// Checks the commit block `commit` of `arena`; its block number and the root's link.
fn arena_commit(arena: &BlockArena, commit: &Cid) -> Result<(BlockId, Target), ExportError> {
    let commit_id = arena
        .find_raw(&commit.to_bytes())
        .ok_or(VerifyError::MissingBlock {
            cid: *commit,
            kind: BlockKind::Commit,
        })?;
    let signed = check_commit(commit, arena.block(commit_id))?;
    let root = *signed.data();
    let root = match arena.find_raw(&root.to_bytes()) {
        Some(id) => Target::Found(id),
        None => Target::Missing(root),
    };
    Ok((commit_id, root))
}

/// The export of the checked commit `commit_id` with tree `root` into `out`, on up to
/// `threads` threads (this one joins).
fn export_into<O: Output>(
    arena: &BlockArena,
    commit_id: BlockId,
    root: Target,
    threads: usize,
    out: O,
) -> Result<Joiner<O>, ExportError> {
    let mut joiner = Joiner::new(arena, out);
    joiner.put(arena, commit_id)?;
    let mut scratch = Scratch::default();
    let (items, top_keys, _) = if threads > 1 {
        open_top(arena, root, MIN_TASKS, &mut scratch)
    } else {
        let whole = Item::Subtree {
            target: root,
            height: None,
        };
        (vec![whole], Vec::new(), 0)
    };
    let tasks: Vec<(Target, Option<u8>)> = items
        .iter()
        .filter_map(|item| match item {
            Item::Subtree { target, height } => Some((*target, *height)),
            _ => None,
        })
        .collect();
    let helpers = threads.min(tasks.len()).saturating_sub(1);
    let board = Board::new(tasks);
    let joined = std::thread::scope(|s| {
        for _ in 0..helpers {
            // A helper that cannot start leaves its share to this thread.
            let _ = std::thread::Builder::new().spawn_scoped(s, || board.help(arena));
        }
        let joined = joiner.run(arena, items, &top_keys, &board, &mut scratch);
        board.stop.store(true, Ordering::Relaxed);
        joined
    });
    joined.map(|()| joiner)
}

impl ArenaExport {
    /// Walks the tree of the commit `commit` through `arena` and checks it as [`export_car`]
    /// does (commit block, node hashes and canonical form, key order within and across nodes,
    /// every block present), without writing anything. Large trees are walked on several
    /// threads (see [`ArenaExport`]).
    pub fn plan(arena: &BlockArena, commit: &Cid) -> Result<ArenaExport, ExportError> {
        Self::plan_with_threads(arena, commit, Self::threads_for(arena))
    }

    fn threads_for(arena: &BlockArena) -> usize {
        if arena.len() >= PARALLEL_MIN_BLOCKS {
            default_threads()
        } else {
            1
        }
    }

    /// [`ArenaExport::plan`] on at most `threads` threads (this one included), whatever the
    /// tree's size: with more than one, the top of the tree is opened and its subtrees walked
    /// in parallel. The result does not depend on `threads`.
    pub fn plan_with_threads(
        arena: &BlockArena,
        commit: &Cid,
        threads: usize,
    ) -> Result<ArenaExport, ExportError> {
        let (commit_id, root) = arena_commit(arena, commit)?;
        let order = Vec::with_capacity(arena.len());
        let joiner = export_into(arena, commit_id, root, threads, order)?;
        Ok(ArenaExport {
            commit: *commit,
            order: joiner.out,
            stats: joiner.stats,
        })
    }

    /// Checks the commit block `commit` (present, its hash, its form) and builds the arena's
    /// lookup table: what [`ArenaExport::stream`] does before its first byte.
    pub fn check_commit(arena: &BlockArena, commit: &Cid) -> Result<(), ExportError> {
        arena_commit(arena, commit).map(|_| ())
    }

    /// Walks and writes at once: the CAR of [`ArenaExport::plan`] then [`ArenaExport::write`],
    /// but each block goes out as soon as the walk has checked it (subtrees walked by helper
    /// threads are written when their turn comes), so the writing overlaps the walk. Nothing
    /// is written if the commit block is bad; a repository broken further down fails part-way,
    /// after some of the CAR was written: the caller must make that failure visible to the
    /// reader (for HTTP, end the body with an error rather than cleanly).
    pub fn stream<W: Write>(
        arena: &BlockArena,
        commit: &Cid,
        out: W,
    ) -> Result<(W, ExportStats), ExportError> {
        Self::stream_with_threads(arena, commit, Self::threads_for(arena), out)
    }

    /// [`ArenaExport::stream`] on at most `threads` threads.
    pub fn stream_with_threads<W: Write>(
        arena: &BlockArena,
        commit: &Cid,
        threads: usize,
        out: W,
    ) -> Result<(W, ExportStats), ExportError> {
        let (commit_id, root) = arena_commit(arena, commit)?;
        let car = CarWriter::new(out, &[*commit]).map_err(ExportError::Write)?;
        let joiner = export_into(arena, commit_id, root, threads, car)?;
        let mut stats = joiner.stats;
        stats.bytes = joiner.out.bytes_written();
        let out = joiner.out.finish().map_err(ExportError::Write)?;
        Ok((out, stats))
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
        for &id in &self.order {
            car.write_section(arena.section(id))
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
