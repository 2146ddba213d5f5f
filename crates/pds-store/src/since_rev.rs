//! Records written after a revision, for read-after-write (the PDS merging an account's newest
//! records into an app view answer that lags behind).

use atp_syntax::Did;
use rusqlite::params;

use crate::Store;
use crate::db::exists;
use crate::error::StoreError;
use crate::record::{self, RECORD_SELECT, StoredRecord};

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
                let sql = format!(
                    "{RECORD_SELECT} WHERE r.did = ?1 AND r.rev > ?2 ORDER BY r.rev ASC LIMIT ?3"
                );
                let limit = i64::try_from(SINCE_REV_LIMIT).unwrap_or(10);
                let mut stmt = conn.prepare_cached(&sql)?;
                let rows =
                    stmt.query_map(params![did.as_str(), rev, limit], record::record_from_row)?;
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
