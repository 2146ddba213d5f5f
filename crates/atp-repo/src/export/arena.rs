//! [`BlockArena`]: the blocks of a repository held in a few large buffers ([`ArenaPart`]s, e.g.
//! one per reader thread), looked up by binary CID through one open-addressing table.
//!
//! A part keeps each block as a 6-byte header (the CID's length and the block's), the CID's
//! bytes and the block's, one after the other: the CID and the block are one CAR section. The
//! table's entries point straight at these, so a lookup touches the table and the block's own
//! bytes and nothing else. The table is built on the first lookup (joining parts costs nothing
//! where it happens, e.g. on an async thread), large parts on threads of their own; a CID
//! present twice keeps its first block (parts in order, then blocks in order).

use std::hash::BuildHasher;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use atp_data::Cid;

/// Bytes before each block in a part: the CID's length (`u16`) and the block's (`u32`),
/// little-endian.
const HEADER: usize = 6;

/// Blocks appended one after the other, with no lookup: what one reader fills (on its own
/// thread) before the parts are joined into a [`BlockArena`].
#[derive(Debug, Default)]
pub struct ArenaPart {
    data: Vec<u8>,
    blocks: usize,
}

impl ArenaPart {
    /// An empty part.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty part with room for `blocks` blocks of `bytes` bytes in all (CIDs included).
    pub fn with_capacity(blocks: usize, bytes: usize) -> Self {
        ArenaPart {
            data: Vec::with_capacity(bytes.saturating_add(blocks.saturating_mul(HEADER))),
            blocks: 0,
        }
    }

    /// Appends a block by its CID's binary form as stored by a block store, which must be the
    /// canonical one (`Cid::to_bytes`): it is not parsed again, nor the bytes checked against
    /// it. `false` (nothing kept) for an empty CID, a CID of 64 KiB or more, a block of 4 GiB
    /// or more, or a part that would reach 1 TiB.
    pub fn push_raw(&mut self, cid: &[u8], bytes: &[u8]) -> bool {
        let (Ok(cid_len), Ok(len)) = (u16::try_from(cid.len()), u32::try_from(bytes.len())) else {
            return false;
        };
        if cid.is_empty() || self.data.len() + HEADER + cid.len() + bytes.len() > MAX_PART_BYTES {
            return false;
        }
        self.data.extend_from_slice(&cid_len.to_le_bytes());
        self.data.extend_from_slice(&len.to_le_bytes());
        self.data.extend_from_slice(cid);
        self.data.extend_from_slice(bytes);
        self.blocks += 1;
        true
    }

    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.blocks
    }

    /// Whether there is no block.
    pub fn is_empty(&self) -> bool {
        self.blocks == 0
    }

    /// Total bytes of the blocks with their CIDs.
    pub fn data_len(&self) -> usize {
        self.data.len() - self.blocks * HEADER
    }

    /// Offsets of the blocks from `from` (a block's offset) on, with their CIDs.
    fn blocks_from(&self, from: usize) -> impl Iterator<Item = (usize, &[u8])> {
        let mut at = from;
        std::iter::from_fn(move || {
            let (cid, _, next) = read_at(&self.data, at)?;
            let here = at;
            at = next;
            Some((here, cid))
        })
    }
}

/// The block at `offset` of a part's buffer: its CID, its section (CID and block), and the
/// offset of the next block.
fn read_at(data: &[u8], offset: usize) -> Option<(&[u8], &[u8], usize)> {
    let header = data.get(offset..offset.checked_add(HEADER)?)?;
    let cid_len = usize::from(u16::from_le_bytes([header[0], header[1]]));
    let len = u32::from_le_bytes([header[2], header[3], header[4], header[5]]) as usize;
    let start = offset + HEADER;
    let end = start.checked_add(cid_len)?.checked_add(len)?;
    let section = data.get(start..end)?;
    Some((&section[..cid_len], section, end))
}

/// Most bytes in one part (offsets are 40 bits).
const MAX_PART_BYTES: usize = (1 << 40) - 1;
/// Most parts in one arena (an entry keeps the part's number in 8 bits).
const MAX_PARTS: usize = 255;
/// Most blocks in one arena (the table's positions are 32 bits, and it is at most half full).
const MAX_BLOCKS: usize = 1 << 30;
/// Blocks from which a part is added to the table on a thread of its own (when there are
/// several such parts).
const PARALLEL_PART_MIN: usize = 16 * 1024;

/// Threads of the machine (read once).
pub(crate) fn machine_threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// A block's number in a [`BlockArena`]: its position in the lookup table.
pub(crate) type BlockId = u32;

/// Blocks looked up by binary CID: a whole repository read at once, for
/// [`ArenaExport`](super::ArenaExport). A CID added twice keeps its first bytes.
#[derive(Debug, Default)]
pub struct BlockArena {
    parts: Vec<ArenaPart>,
    index: OnceLock<Index>,
}

impl BlockArena {
    /// An empty arena.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty arena with room for `blocks` blocks of `bytes` bytes in all.
    pub fn with_capacity(blocks: usize, bytes: usize) -> Self {
        Self::from_parts(vec![ArenaPart::with_capacity(blocks, bytes)])
    }

    /// The blocks of several parts (a CID present in several keeps the first). Cheap: the
    /// lookup table is built on the first lookup. Parts beyond the 255th are dropped.
    pub fn from_parts(mut parts: Vec<ArenaPart>) -> Self {
        parts.truncate(MAX_PARTS);
        BlockArena {
            parts,
            index: OnceLock::new(),
        }
    }

    /// Adds a block (its bytes are not checked against the CID here; the export checks the
    /// commit and every MST node, and trusts record blocks as [`crate::Traversal`] does).
    pub fn insert(&mut self, cid: &Cid, bytes: &[u8]) {
        self.insert_raw(&cid.to_bytes(), bytes);
    }

    /// Adds a block by its CID's binary form, which must be the canonical one (see
    /// [`ArenaPart::push_raw`]). A CID already present keeps its first bytes.
    pub fn insert_raw(&mut self, cid: &[u8], bytes: &[u8]) {
        if self.find_raw(cid).is_some() || self.total() >= MAX_BLOCKS {
            return;
        }
        if self.parts.is_empty() {
            self.parts.push(ArenaPart::new());
        }
        let p = self.parts.len() - 1;
        let Some(part) = self.parts.last_mut() else {
            return;
        };
        let offset = part.data.len();
        if !part.push_raw(cid, bytes) {
            return;
        }
        // `find_raw` built the table.
        let parts = &self.parts;
        if let Some(index) = self.index.get_mut() {
            if (index.len + 1) * 2 > index.table.len() {
                *index = Index::build(parts, index.table.len());
            } else {
                index.insert_new(parts, p, offset, cid);
            }
        }
    }

    /// Total blocks in the parts (repeated CIDs included).
    fn total(&self) -> usize {
        self.parts.iter().map(ArenaPart::len).sum()
    }

    /// The lookup table, built now if it is not yet.
    fn index(&self) -> &Index {
        self.index
            .get_or_init(|| Index::build(&self.parts, self.total()))
    }

    /// The number of the block with this binary CID.
    pub(crate) fn find_raw(&self, cid: &[u8]) -> Option<BlockId> {
        if cid.is_empty() {
            return None;
        }
        self.index().find(&self.parts, cid)
    }

    /// The numbers of the blocks whose CIDs sit at `links` in `cids`, into `found` (`None` for
    /// a CID not here). The table entries of all the links are read first, then the blocks
    /// they point at, so that the memory accesses of different links overlap.
    pub(crate) fn find_many(
        &self,
        cids: &[u8],
        links: &[std::ops::Range<usize>],
        firsts: &mut Vec<(usize, u64)>,
        found: &mut Vec<Option<BlockId>>,
    ) {
        let index = self.index();
        firsts.clear();
        found.clear();
        for link in links {
            let cid = cids.get(link.clone()).unwrap_or_default();
            let pos = index.position(tail(cid));
            firsts.push((pos, index.entry(pos)));
        }
        let mask = index.table.len() - 1;
        for (link, &(pos, entry)) in links.iter().zip(firsts.iter()) {
            let cid = cids.get(link.clone()).unwrap_or_default();
            found.push(if entry == 0 || cid.is_empty() {
                None
            } else if entry >> 48 == Index::tag(tail(cid))
                && same_cid(cid_at(&self.parts, entry), cid)
            {
                // Usually the first entry is the block.
                BlockId::try_from(pos).ok()
            } else {
                index.find_from(&self.parts, cid, (pos + 1) & mask)
            });
        }
    }

    /// The CID and section of a block.
    fn at(&self, id: BlockId) -> Option<(&[u8], &[u8])> {
        let (part, offset) = locate(self.index().entry(id as usize))?;
        let (cid, section, _) = read_at(&self.parts.get(part)?.data, offset)?;
        Some((cid, section))
    }

    /// The binary CID of a block (empty if there is no such block).
    pub(crate) fn cid_bytes(&self, id: BlockId) -> &[u8] {
        self.at(id).map_or(&[], |(cid, _)| cid)
    }

    /// The bytes of a block (empty if there is no such block).
    pub(crate) fn block(&self, id: BlockId) -> &[u8] {
        self.at(id)
            .map_or(&[], |(cid, section)| &section[cid.len()..])
    }

    /// The CID's bytes followed by the block's (empty if there is no such block).
    pub(crate) fn section(&self, id: BlockId) -> &[u8] {
        self.at(id).map_or(&[], |(_, section)| section)
    }

    /// The bytes of a block.
    pub fn get(&self, cid: &Cid) -> Option<&[u8]> {
        Some(self.block(self.find_raw(&cid.to_bytes())?))
    }

    /// Number of distinct blocks.
    pub fn len(&self) -> usize {
        self.index().len
    }

    /// Whether there is no block.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Upper bound (exclusive) of the block numbers, for tables indexed by them.
    pub(crate) fn id_bound(&self) -> usize {
        self.index().table.len()
    }

    /// Total bytes of the blocks with their CIDs.
    pub fn data_len(&self) -> usize {
        self.parts.iter().map(ArenaPart::data_len).sum()
    }
}

/// The part and offset an entry points at.
fn locate(entry: u64) -> Option<(usize, usize)> {
    let part = ((entry >> 40) & 0xff) as usize;
    Some((
        part.checked_sub(1)?,
        (entry & MAX_PART_BYTES as u64) as usize,
    ))
}

/// The CID an entry points at.
fn cid_at(parts: &[ArenaPart], entry: u64) -> &[u8] {
    locate(entry)
        .and_then(|(p, offset)| read_at(&parts.get(p)?.data, offset))
        .map_or(&[], |(cid, _, _)| cid)
}

/// The last eight bytes of a binary CID (the end of its digest, already uniformly random).
fn tail(cid: &[u8]) -> u64 {
    let mut word = [0; 8];
    let n = cid.len().min(8);
    word[8 - n..].copy_from_slice(&cid[cid.len() - n..]);
    u64::from_le_bytes(word)
}

/// Whether two binary CIDs are equal (the usual 36-byte form compared as one array).
fn same_cid(a: &[u8], b: &[u8]) -> bool {
    match (<&[u8; 36]>::try_from(a), <&[u8; 36]>::try_from(b)) {
        (Ok(a), Ok(b)) => {
            let words = |x: &[u8; 36]| {
                let (head, rest) = x.split_at(16);
                let (middle, end) = rest.split_at(16);
                let head: [u8; 16] = head.try_into().unwrap_or_default();
                let middle: [u8; 16] = middle.try_into().unwrap_or_default();
                let end: [u8; 4] = end.try_into().unwrap_or_default();
                (
                    u128::from_le_bytes(head),
                    u128::from_le_bytes(middle),
                    u32::from_le_bytes(end),
                )
            };
            words(a) == words(b)
        }
        _ => a == b,
    }
}

/// Open-addressing table (linear probing, at most half full) from a CID to the block: an
/// entry is `tag << 48 | (part + 1) << 40 | offset`, 0 when empty, where the tag (16 bits of the
/// CID's end) spares most comparisons of whole CIDs. Positions come from the CID's end mixed
/// with a per-table random key, so that stored CIDs cannot be chosen to pile up on one
/// position.
#[derive(Debug)]
struct Index {
    /// Atomic so that parts can be added on several threads; reads are plain loads.
    table: Vec<AtomicU64>,
    shift: u32,
    key: u64,
    /// Distinct CIDs in the table.
    len: usize,
}

impl Index {
    fn with_room(blocks: usize) -> Index {
        let size = (blocks.clamp(8, MAX_BLOCKS) * 2).next_power_of_two();
        Index {
            table: (0..size).map(|_| AtomicU64::new(0)).collect(),
            shift: 64 - size.trailing_zeros(),
            key: std::collections::hash_map::RandomState::new().hash_one(0x0061_7265_6e61_u64),
            len: 0,
        }
    }

    fn position(&self, t: u64) -> usize {
        ((t ^ self.key).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> self.shift) as usize
    }

    fn tag(t: u64) -> u64 {
        t >> 48
    }

    /// The table of the blocks of `parts` (room for at least `room` blocks). Large parts are
    /// added on threads of their own.
    fn build(parts: &[ArenaPart], room: usize) -> Index {
        let total: usize = parts.iter().map(ArenaPart::len).sum();
        let mut index = Index::with_room(room.max(total).min(MAX_BLOCKS));
        let big = parts
            .iter()
            .filter(|p| p.len() >= PARALLEL_PART_MIN)
            .count();
        if big < 2 || machine_threads() < 2 {
            for (p, part) in parts.iter().enumerate() {
                for (offset, cid) in part.blocks_from(0) {
                    if index.len >= MAX_BLOCKS {
                        return index;
                    }
                    index.insert_new(parts, p, offset, cid);
                }
            }
            return index;
        }
        let this = &index;
        let add = |p: usize| {
            if let Some(part) = parts.get(p) {
                for (offset, cid) in part.blocks_from(0) {
                    this.insert_shared(parts, p, offset, cid);
                }
            }
        };
        std::thread::scope(|s| {
            let helpers: Vec<_> = (1..parts.len())
                .map(|p| {
                    let add = &add;
                    (
                        p,
                        std::thread::Builder::new().spawn_scoped(s, move || add(p)),
                    )
                })
                .collect();
            add(0);
            for (p, helper) in helpers {
                // A part whose thread could not start (or failed) is added here.
                if helper.map(|h| h.join().is_err()).unwrap_or(true) {
                    add(p);
                }
            }
        });
        index.len = index
            .table
            .iter()
            .filter(|e| e.load(Ordering::Relaxed) != 0)
            .count();
        index
    }

    /// Adds a block to a table being filled by several threads. Of a CID found several times,
    /// the first block (by part, then offset) keeps the entry. The table must have room.
    fn insert_shared(&self, parts: &[ArenaPart], p: usize, offset: usize, cid: &[u8]) {
        let t = tail(cid);
        let tag = Self::tag(t);
        let mine = tag << 48 | (p as u64 + 1) << 40 | offset as u64;
        let mask = self.table.len() - 1;
        let mut pos = self.position(t);
        for _ in 0..self.table.len() {
            let slot = &self.table[pos];
            let mut entry = slot.load(Ordering::Relaxed);
            loop {
                if entry == 0 {
                    match slot.compare_exchange(0, mine, Ordering::Relaxed, Ordering::Relaxed) {
                        Ok(_) => return,
                        Err(now) => {
                            entry = now;
                            continue;
                        }
                    }
                }
                if entry >> 48 != tag || !same_cid(cid_at(parts, entry), cid) {
                    break;
                }
                // The same CID: keep the first block.
                let order = |e: u64| locate(e).unwrap_or((usize::MAX, usize::MAX));
                if order(mine) >= order(entry) {
                    return;
                }
                match slot.compare_exchange(entry, mine, Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => return,
                    Err(now) => entry = now,
                }
            }
            pos = (pos + 1) & mask;
        }
    }

    /// Adds a block (part `p`, at `offset`) unless its CID is already present. The table must
    /// have room.
    fn insert_new(&mut self, parts: &[ArenaPart], p: usize, offset: usize, cid: &[u8]) {
        let t = tail(cid);
        let tag = Self::tag(t);
        let mask = self.table.len() - 1;
        let mut pos = self.position(t);
        for _ in 0..self.table.len() {
            let entry = *self.table[pos].get_mut();
            if entry == 0 {
                *self.table[pos].get_mut() = tag << 48 | (p as u64 + 1) << 40 | offset as u64;
                self.len += 1;
                return;
            }
            if entry >> 48 == tag && same_cid(cid_at(parts, entry), cid) {
                return;
            }
            pos = (pos + 1) & mask;
        }
    }

    /// The entry at `pos` (0 when empty or out of the table).
    fn entry(&self, pos: usize) -> u64 {
        self.table.get(pos).map_or(0, |e| e.load(Ordering::Relaxed))
    }

    fn find(&self, parts: &[ArenaPart], cid: &[u8]) -> Option<BlockId> {
        self.find_from(parts, cid, self.position(tail(cid)))
    }

    /// Looks for `cid` from position `pos` of its probe sequence on.
    fn find_from(&self, parts: &[ArenaPart], cid: &[u8], mut pos: usize) -> Option<BlockId> {
        let tag = Self::tag(tail(cid));
        let mask = self.table.len() - 1;
        for _ in 0..self.table.len() {
            let entry = self.entry(pos);
            if entry == 0 {
                return None;
            }
            if entry >> 48 == tag && same_cid(cid_at(parts, entry), cid) {
                return BlockId::try_from(pos).ok();
            }
            pos = (pos + 1) & mask;
        }
        None
    }
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
        assert_ne!(ia, ib);
        assert_eq!(arena.block(ia), b"first");
        assert_eq!(arena.block(ib), b"second");
        assert_eq!(arena.section(ib), [b.as_slice(), b"second"].concat());
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
        assert_eq!(arena.block(arena.find_raw(b"xy").unwrap()), b"short");
    }

    fn cid(i: u32) -> Vec<u8> {
        let mut c = vec![0x01, 0x71, 0x12, 0x20];
        c.extend_from_slice(&[0; 28]);
        c.extend_from_slice(&i.to_be_bytes());
        c
    }

    /// Parts of `n` blocks each where part `k` holds blocks `k*step..k*step+n` (so that
    /// consecutive parts repeat `n - step` CIDs, with other bytes).
    fn overlapping(parts: u32, n: u32, step: u32) -> BlockArena {
        BlockArena::from_parts(
            (0..parts)
                .map(|k| {
                    let mut part = ArenaPart::new();
                    for i in k * step..k * step + n {
                        assert!(part.push_raw(&cid(i), &[k as u8; 3]));
                    }
                    part
                })
                .collect(),
        )
    }

    #[test]
    fn parts_join_and_keep_the_first_of_a_repeated_cid() {
        for (n, step) in [(1000, 990), (40_000, 30_000)] {
            let arena = overlapping(3, n, step);
            let distinct = (2 * step + n) as usize;
            assert_eq!(arena.len(), distinct, "{n}");
            assert!(arena.id_bound() >= 2 * distinct);
            for i in 0..2 * step + n {
                let id = arena.find_raw(&cid(i)).unwrap();
                // The first part holding the CID.
                let first = (0..3).find(|k| i >= k * step && i < k * step + n).unwrap();
                assert_eq!(arena.block(id), [first as u8; 3], "{n}: {i}");
                assert_eq!(arena.cid_bytes(id), cid(i));
            }
            assert!(arena.find_raw(&cid(9_000_000)).is_none());
            assert_eq!(arena.data_len(), 3 * n as usize * (36 + 3));
        }
        let mut part = ArenaPart::with_capacity(4, 100);
        assert!(!part.push_raw(b"", b"no CID"));
        assert!(part.is_empty());
        let arena = BlockArena::from_parts(vec![part]);
        assert!(arena.is_empty());
        assert_eq!(arena.block(0), b"");
        assert_eq!(arena.block(u32::MAX), b"");
    }

    #[test]
    fn the_table_grows() {
        let mut arena = BlockArena::new();
        for i in 0..5000 {
            arena.insert_raw(&cid(i), &i.to_le_bytes());
        }
        for i in 0..5000 {
            let id = arena.find_raw(&cid(i)).unwrap();
            assert_eq!(arena.block(id), i.to_le_bytes());
        }
        assert_eq!(arena.len(), 5000);
    }
}
