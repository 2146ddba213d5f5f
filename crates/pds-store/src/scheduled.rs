//! Scheduled work kept in the database, so it survives restarts: accounts deactivated with a
//! `delete_after` time that has passed.
//!
//! The deletion itself re-checks the schedule inside its own transaction
//! ([`Store::delete_account_if_due`]): an account reactivated (or given a later deadline) after
//! it was listed as due is left alone, whatever the timing.

use atp_data::Cid;
use atp_syntax::Did;
use chrono::{DateTime, Utc};
use rusqlite::params;

use crate::Store;
use crate::account::delete_account_rows;
use crate::db::{exists, millis, parsed_at};
use crate::error::StoreError;
use crate::event::NewEvent;

/// The condition of a scheduled deletion: deactivated, with a deadline at or before `?1`.
const DUE: &str = "deactivated_at IS NOT NULL AND delete_after IS NOT NULL AND delete_after <= ?1";

impl Store {
    /// Up to `limit` deactivated accounts whose `delete_after` is at or before `now`, oldest
    /// deadline first.
    pub async fn accounts_due_for_deletion(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Did>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db()
            .read(move |conn| {
                let sql =
                    format!("SELECT did FROM account WHERE {DUE} ORDER BY delete_after LIMIT ?2");
                let mut stmt = conn.prepare_cached(&sql)?;
                let rows = stmt.query_map(params![millis(&now), limit], |r| parsed_at(r, 0))?;
                Ok(rows.collect::<Result<Vec<Did>, _>>()?)
            })
            .await
    }

    /// Deletes `did` as [`Store::delete_account`] does, but only if, inside the deleting
    /// transaction, it is still deactivated with a `delete_after` at or before `now`. Returns
    /// the CIDs of its blobs that had files, or `None` when it was not due (or is gone): then
    /// nothing is written.
    pub async fn delete_account_if_due(
        &self,
        did: &Did,
        event: Option<NewEvent>,
        now: DateTime<Utc>,
    ) -> Result<Option<Vec<Cid>>, StoreError> {
        let did = did.clone();
        self.db()
            .write(move |conn| {
                let sql = format!("SELECT 1 FROM account WHERE did = ?2 AND {DUE}");
                if !exists(conn, &sql, params![millis(&now), did.as_str()])? {
                    return Ok(None);
                }
                delete_account_rows(conn, &did, event.as_ref(), &now).map(Some)
            })
            .await
    }
}
