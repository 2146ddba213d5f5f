//! Scheduled work kept in the database, so it survives restarts: accounts deactivated with a
//! `delete_after` time that has passed.

use atp_syntax::Did;
use chrono::{DateTime, Utc};
use rusqlite::params;

use crate::Store;
use crate::db::{millis, parsed_at};
use crate::error::StoreError;

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
                let mut stmt = conn.prepare_cached(
                    "SELECT did FROM account
                     WHERE deactivated_at IS NOT NULL AND delete_after IS NOT NULL
                       AND delete_after <= ?1
                     ORDER BY delete_after LIMIT ?2",
                )?;
                let rows = stmt.query_map(params![millis(&now), limit], |r| parsed_at(r, 0))?;
                Ok(rows.collect::<Result<Vec<Did>, _>>()?)
            })
            .await
    }
}
