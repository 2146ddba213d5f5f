//! A whole repository read at once, for a full export (`com.atproto.sync.getRepo` without
//! `since`): the root and every block of the account, as they stand at one moment even if a
//! commit lands meanwhile.
//!
//! Reading the blocks in the primary key's order (`did, cid`) would visit the table's pages in
//! random order, one B-tree descent per block. Blocks are instead read in `rowid` order (the
//! order they were written in), so each table page is read once: by a scan of the account's
//! rowid range when its rows are packed together (the usual case; with no check of `did` at all
//! when the range holds nothing else), else by rowid lookups in ascending order.
//!
//! Two read connections share the work. One ("down") starts at once from the row of the current
//! commit block (near the top of the account's range) and reads downwards; the other ("up")
//! meanwhile finds the account's range (a scan of its index entries), then splits what the down
//! reader has not read yet, reads its lower half upwards, and any rows above the commit's. The
//! two read transactions started apart, so their results are used together only if both saw the
//! same root (a commit that lands in between changes it, and then one connection reads
//! everything again). Rows that both happened to read are kept once ([`BlockArena`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};

use atp_repo::BlockArena;
use atp_repo::export::ArenaPart;
use atp_syntax::Did;
use rusqlite::{Connection, OptionalExtension, params};

use crate::Store;
use crate::error::StoreError;
use crate::repo::{RepoRoot, read_root};

/// What [`Store::repo_snapshot`] read.
#[derive(Debug)]
pub enum RepoSnapshot {
    /// The current root and every block stored for the account (unused ones included).
    Loaded {
        /// The current root.
        root: RepoRoot,
        /// The blocks.
        blocks: BlockArena,
    },
    /// The account's blocks hold more than the limit: only the root (export it another way).
    TooLarge {
        /// The current root.
        root: RepoRoot,
    },
}

/// Rows of other accounts a rowid range scan may read per row of the account, at most, before
/// lookups by rowid are cheaper.
const RANGE_SCAN_SLACK: i64 = 3;
/// Bytes a reader counts on its own before adding them to the shared total.
const BYTES_BATCH: usize = 64 * 1024;

fn corrupt(did: &Did, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        reason: format!("repo_block of {did}: {e}"),
    }
}

/// What the two readers share.
#[derive(Debug)]
struct Meet {
    /// The lowest rowid the down reader has reached (`i64::MAX` before it starts).
    down_at: AtomicI64,
    /// The down reader stops at rows at or below this one (`i64::MIN` until the up reader has
    /// split the range; `i64::MAX` to stop it at once).
    split: AtomicI64,
    /// Bytes read by both, counted in batches against the limit.
    bytes: AtomicUsize,
    /// A reader went over the limit.
    too_large: AtomicBool,
    max_bytes: usize,
}

impl Meet {
    fn new(max_bytes: usize) -> Meet {
        Meet {
            down_at: AtomicI64::new(i64::MAX),
            split: AtomicI64::new(i64::MIN),
            bytes: AtomicUsize::new(0),
            too_large: AtomicBool::new(false),
            max_bytes,
        }
    }
}

/// Counts a reader's bytes against the shared limit.
struct Budget<'a> {
    meet: &'a Meet,
    pending: usize,
}

impl Budget<'_> {
    /// Adds `n` bytes; `false` once the total is over the limit (this reader or the other).
    fn take(&mut self, n: usize) -> bool {
        self.pending += n;
        if self.pending < BYTES_BATCH && self.pending < self.meet.max_bytes {
            return !self.meet.too_large.load(Ordering::Relaxed);
        }
        let total = self
            .meet
            .bytes
            .fetch_add(self.pending, Ordering::Relaxed)
            .saturating_add(self.pending);
        self.pending = 0;
        if total > self.meet.max_bytes {
            self.meet.too_large.store(true, Ordering::Relaxed);
        }
        !self.meet.too_large.load(Ordering::Relaxed)
    }

    /// Adds what is still pending; `false` if the total is over the limit.
    fn settle(&mut self) -> bool {
        let total = self
            .meet
            .bytes
            .fetch_add(self.pending, Ordering::Relaxed)
            .saturating_add(self.pending);
        self.pending = 0;
        if total > self.meet.max_bytes {
            self.meet.too_large.store(true, Ordering::Relaxed);
        }
        !self.meet.too_large.load(Ordering::Relaxed)
    }
}

/// What the up reader read.
#[derive(Debug)]
struct Up {
    root: RepoRoot,
    part: ArenaPart,
    /// The rowid of the commit block, if the down reader's rows are to be used with these
    /// (`None`: this reader read everything).
    top: Option<i64>,
    too_large: bool,
}

/// What the down reader read.
#[derive(Debug)]
struct Down {
    root: RepoRoot,
    part: ArenaPart,
    top: Option<i64>,
}

/// The rowid of the account's block `cid`.
fn rowid_of(conn: &Connection, did: &Did, cid: &atp_data::Cid) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT rowid FROM repo_block WHERE did = ?1 AND cid = ?2")?
        .query_row(params![did.as_str(), cid.to_bytes()], |r| r.get(0))
        .optional()?)
}

/// Appends the rows of `rows` (`cid, bytes`) to `part`; `false` if the limit was reached.
fn read_rows(
    did: &Did,
    mut rows: rusqlite::Rows<'_>,
    part: &mut ArenaPart,
    budget: &mut Budget<'_>,
) -> Result<bool, StoreError> {
    while let Some(row) = rows.next()? {
        let cid = row.get_ref(0)?.as_blob().map_err(|e| corrupt(did, e))?;
        let bytes = row.get_ref(1)?.as_blob().map_err(|e| corrupt(did, e))?;
        if !budget.take(cid.len() + bytes.len()) {
            return Ok(false);
        }
        part.push_raw(cid, bytes);
    }
    Ok(true)
}

/// The up reader: the root, the account's rowid range, then its share of the rows (all of them
/// when the down reader has not started, or when the rows are spread out).
fn read_up(conn: &Connection, did: &Did, meet: &Meet) -> Result<Option<Up>, StoreError> {
    let stop_down = || meet.split.store(i64::MAX, Ordering::Relaxed);
    let Some(root) = read_root(conn, did)? else {
        stop_down();
        return Ok(None);
    };
    let (count, first, last): (i64, Option<i64>, Option<i64>) = conn
        .prepare_cached("SELECT count(*), min(rowid), max(rowid) FROM repo_block WHERE did = ?1")?
        .query_row([did.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    let (Some(first), Some(last)) = (first, last) else {
        stop_down();
        return Ok(Some(Up {
            root,
            part: ArenaPart::new(),
            top: None,
            too_large: false,
        }));
    };
    let rows = usize::try_from(count).unwrap_or(0);
    let span = last.saturating_sub(first).saturating_add(1);
    let packed = span == count;
    let dense = span <= count.saturating_mul(1 + RANGE_SCAN_SLACK);
    // Blocks average well over 100 bytes; reserve for that, within the limit.
    let mut part = ArenaPart::with_capacity(rows, rows.saturating_mul(200).min(meet.max_bytes));
    let mut budget = Budget { meet, pending: 0 };
    let top = if dense {
        rowid_of(conn, did, &root.commit)?
    } else {
        None
    };
    let Some(top) = top else {
        // Spread out (or no commit block): read everything here, in ascending rowid order.
        stop_down();
        let mut stmt = if dense {
            range_statement(conn, packed)?
        } else {
            conn.prepare_cached(
                "SELECT cid, bytes FROM repo_block WHERE rowid IN
                 (SELECT rowid FROM repo_block WHERE did = ?1 AND ?2 <= ?3)",
            )?
        };
        let complete = read_rows(
            did,
            stmt.query(params![did.as_str(), first, last])?,
            &mut part,
            &mut budget,
        )? && budget.settle();
        return Ok(Some(Up {
            root,
            part,
            top: None,
            too_large: !complete,
        }));
    };
    // Split what the down reader has not read yet: the lower half is ours. If it has not
    // started, all of it (it stops as soon as it starts).
    let reached = meet.down_at.load(Ordering::Relaxed);
    let split = if reached == i64::MAX {
        last
    } else {
        let below = reached.min(top.saturating_add(1));
        first.saturating_add(below.saturating_sub(first) / 2)
    };
    meet.split.store(split, Ordering::Relaxed);
    let mut stmt = range_statement(conn, packed)?;
    let mut complete = read_rows(
        did,
        stmt.query(params![did.as_str(), first, split])?,
        &mut part,
        &mut budget,
    )?;
    // Rows written after the commit block in its transaction (the down reader starts there).
    let above = split.max(top).saturating_add(1);
    if complete && above <= last {
        complete = read_rows(
            did,
            stmt.query(params![did.as_str(), above, last])?,
            &mut part,
            &mut budget,
        )?;
    }
    let complete = complete && budget.settle();
    Ok(Some(Up {
        root,
        part,
        top: Some(top),
        too_large: !complete,
    }))
}

/// The ascending scan of the rowid range `?2..=?3` for the account `?1` (with no look at `did`
/// when the account's rows fill the range).
fn range_statement(
    conn: &Connection,
    packed: bool,
) -> Result<rusqlite::CachedStatement<'_>, StoreError> {
    Ok(if packed {
        conn.prepare_cached(
            "SELECT cid, bytes FROM repo_block WHERE rowid BETWEEN ?2 AND ?3 AND ?1 = ?1",
        )?
    } else {
        conn.prepare_cached(
            "SELECT cid, bytes FROM repo_block WHERE rowid BETWEEN ?2 AND ?3 AND +did = ?1",
        )?
    })
}

/// The down reader: the root, then the rows from the commit block's downwards, until the up
/// reader's split.
fn read_down(conn: &Connection, did: &Did, meet: &Meet) -> Result<Option<Down>, StoreError> {
    let Some(root) = read_root(conn, did)? else {
        return Ok(None);
    };
    let mut part = ArenaPart::new();
    let Some(top) = rowid_of(conn, did, &root.commit)? else {
        return Ok(Some(Down {
            root,
            part,
            top: None,
        }));
    };
    if meet.split.load(Ordering::Relaxed) >= top {
        // The up reader took everything already.
        return Ok(Some(Down {
            root,
            part,
            top: Some(top),
        }));
    }
    part = ArenaPart::with_capacity(4096, 1 << 20);
    let mut budget = Budget { meet, pending: 0 };
    let mut stmt = conn.prepare_cached(
        "SELECT rowid, cid, bytes FROM repo_block WHERE rowid <= ?2 AND +did = ?1
         ORDER BY rowid DESC",
    )?;
    let mut rows = stmt.query(params![did.as_str(), top])?;
    while let Some(row) = rows.next()? {
        let rowid: i64 = row.get(0)?;
        meet.down_at.store(rowid, Ordering::Relaxed);
        if rowid <= meet.split.load(Ordering::Relaxed) {
            break;
        }
        let cid = row.get_ref(1)?.as_blob().map_err(|e| corrupt(did, e))?;
        let bytes = row.get_ref(2)?.as_blob().map_err(|e| corrupt(did, e))?;
        if !budget.take(cid.len() + bytes.len()) {
            break;
        }
        part.push_raw(cid, bytes);
    }
    budget.settle();
    Ok(Some(Down {
        root,
        part,
        top: Some(top),
    }))
}

impl Store {
    /// The account's root and all its blocks, as they stand at one moment, unless their bytes
    /// (with their CIDs) add up to more than `max_bytes` (then [`RepoSnapshot::TooLarge`], after
    /// reading at most about that much). `None`: the account has no repository.
    pub async fn repo_snapshot(
        &self,
        did: &Did,
        max_bytes: usize,
    ) -> Result<Option<RepoSnapshot>, StoreError> {
        let meet = Arc::new(Meet::new(max_bytes));
        let (up, down) = {
            let (did_up, meet_up) = (did.clone(), Arc::clone(&meet));
            let (did_down, meet_down) = (did.clone(), Arc::clone(&meet));
            tokio::join!(
                self.db().read(move |conn| {
                    let up = read_up(conn, &did_up, &meet_up);
                    if up.is_err() {
                        meet_up.split.store(i64::MAX, Ordering::Relaxed);
                    }
                    up
                }),
                self.db()
                    .read(move |conn| read_down(conn, &did_down, &meet_down))
            )
        };
        let Some(up) = up? else {
            return Ok(None);
        };
        let parts = match (up.top, down) {
            (None, _) => vec![up.part],
            (Some(top), Ok(Some(down)))
                if down.root.commit == up.root.commit && down.top == Some(top) =>
            {
                vec![up.part, down.part]
            }
            // A commit landed between the two reads (or the down reader failed): read
            // everything on one connection.
            _ => return self.repo_snapshot_alone(did, max_bytes).await,
        };
        if up.too_large || meet.too_large.load(Ordering::Relaxed) {
            return Ok(Some(RepoSnapshot::TooLarge { root: up.root }));
        }
        Ok(Some(RepoSnapshot::Loaded {
            root: up.root,
            blocks: BlockArena::from_parts(parts),
        }))
    }

    /// [`Store::repo_snapshot`] on one connection.
    async fn repo_snapshot_alone(
        &self,
        did: &Did,
        max_bytes: usize,
    ) -> Result<Option<RepoSnapshot>, StoreError> {
        let did = did.clone();
        self.db()
            .read(move |conn| {
                let meet = Meet::new(max_bytes);
                // With no down reader, the up reader reads everything.
                let Some(up) = read_up(conn, &did, &meet)? else {
                    return Ok(None);
                };
                if up.too_large {
                    return Ok(Some(RepoSnapshot::TooLarge { root: up.root }));
                }
                Ok(Some(RepoSnapshot::Loaded {
                    root: up.root,
                    blocks: BlockArena::from_parts(vec![up.part]),
                }))
            })
            .await
    }
}
