//! A whole repository read at once, for a full export (`com.atproto.sync.getRepo` without
//! `since`): the root and every block of the account in one read transaction, so they agree
//! even if a commit lands meanwhile.
//!
//! Reading the blocks in the primary key's order (`did, cid`) would visit the table's pages in
//! random order, one B-tree descent per block. Blocks are instead read in `rowid` order (the
//! order they were written in), so each table page is read once: by a scan of the account's
//! rowid range when its rows are packed together (the usual case; with no check of `did` at all
//! when the range holds nothing else), else by rowid lookups in ascending order.

use atp_repo::BlockArena;
use atp_syntax::Did;
use rusqlite::params;

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

fn corrupt(did: &Did, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        reason: format!("repo_block of {did}: {e}"),
    }
}

impl Store {
    /// The account's root and all its blocks, read in one transaction, unless their bytes (with
    /// their CIDs) add up to more than `max_bytes` (then [`RepoSnapshot::TooLarge`], after reading at most about
    /// that much). `None`: the account has no repository.
    pub async fn repo_snapshot(
        &self,
        did: &Did,
        max_bytes: usize,
    ) -> Result<Option<RepoSnapshot>, StoreError> {
        let did = did.clone();
        self.db()
            .read(move |conn| {
                let Some(root) = read_root(conn, &did)? else {
                    return Ok(None);
                };
                let (count, first, last): (i64, Option<i64>, Option<i64>) = conn
                    .prepare_cached(
                        "SELECT count(*), min(rowid), max(rowid) FROM repo_block WHERE did = ?1",
                    )?
                    .query_row([did.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                let (Some(first), Some(last)) = (first, last) else {
                    return Ok(Some(RepoSnapshot::Loaded {
                        root,
                        blocks: BlockArena::new(),
                    }));
                };
                let count = usize::try_from(count).unwrap_or(0);
                // Blocks average well over 100 bytes; reserve for that, within the limit.
                let mut blocks = BlockArena::with_capacity(count, (count * 160).min(max_bytes));
                let span = last.saturating_sub(first).saturating_add(1);
                let mut stmt = if span == count as i64 {
                    // Every row of the range is the account's: no need to look at `did`.
                    conn.prepare_cached(
                        "SELECT cid, bytes FROM repo_block WHERE rowid BETWEEN ?2 AND ?3 AND ?1 = ?1",
                    )?
                } else if span <= (count as i64).saturating_mul(1 + RANGE_SCAN_SLACK) {
                    conn.prepare_cached(
                        "SELECT cid, bytes FROM repo_block
                         WHERE rowid BETWEEN ?2 AND ?3 AND +did = ?1",
                    )?
                } else {
                    conn.prepare_cached(
                        "SELECT cid, bytes FROM repo_block WHERE rowid IN
                         (SELECT rowid FROM repo_block WHERE did = ?1 AND ?2 <= ?3)",
                    )?
                };
                let mut rows = stmt.query(params![did.as_str(), first, last])?;
                while let Some(row) = rows.next()? {
                    let cid = row.get_ref(0)?.as_blob().map_err(|e| corrupt(&did, e))?;
                    let bytes = row.get_ref(1)?.as_blob().map_err(|e| corrupt(&did, e))?;
                    if blocks.data_len() + bytes.len() > max_bytes {
                        return Ok(Some(RepoSnapshot::TooLarge { root }));
                    }
                    blocks.insert_raw(cid, bytes);
                }
                Ok(Some(RepoSnapshot::Loaded { root, blocks }))
            })
            .await
    }
}
