//! Records written after a revision, for read-after-write (the PDS merging an account's newest
//! records into an app view answer that lags behind).

use atp_syntax::Did;
use rusqlite::params;

use crate::Store;
use crate::db::{cid_at, exists, parsed_at, time_at};
use crate::error::StoreError;
use crate::record::StoredRecord;

/// Most records [`Store::records_since_rev`] returns (the reference's limit).
pub const SINCE_REV_LIMIT: usize = 10;

impl Store {
    /// The account's records written by commits after `rev` (compared as text, as the
    /// reference does), oldest revision first, at most [`SINCE_REV_LIMIT`].
    ///
    /// Empty when no record at all is at or before `rev`: the caller's `rev` then predates the
    /// whole repository (e.g. a migrated account), and merging everything would be wrong.
    pub async fn records_since_rev(
        &self,
        did: &Did,
        rev: &str,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        let (did, rev) = (did.clone(), rev.to_owned());
        self.db()
            .read(move |conn| {
                let sql = "SELECT r.uri, r.collection, r.rkey, r.cid, r.rev, r.indexed_at,
                                  r.takedown_ref, b.bytes
                           FROM record r JOIN repo_block b ON b.did = r.did AND b.cid = r.cid
                           WHERE r.did = ?1 AND r.rev > ?2
                           ORDER BY r.rev ASC LIMIT ?3";
                let limit = i64::try_from(SINCE_REV_LIMIT).unwrap_or(10);
                let mut stmt = conn.prepare_cached(sql)?;
                let rows = stmt.query_map(params![did.as_str(), rev, limit], |row| {
                    Ok(StoredRecord {
                        uri: row.get(0)?,
                        collection: parsed_at(row, 1)?,
                        rkey: parsed_at(row, 2)?,
                        cid: cid_at(row, 3)?,
                        rev: parsed_at(row, 4)?,
                        indexed_at: time_at(row, 5)?,
                        takedown_ref: row.get(6)?,
                        bytes: row.get(7)?,
                    })
                })?;
                let records: Vec<StoredRecord> = rows.collect::<Result<_, _>>()?;
                if records.is_empty() {
                    return Ok(records);
                }
                let older = exists(
                    conn,
                    "SELECT 1 FROM record WHERE did = ?1 AND rev <= ?2 LIMIT 1",
                    params![did.as_str(), rev],
                )?;
                Ok(if older { records } else { Vec::new() })
            })
            .await
    }
}
