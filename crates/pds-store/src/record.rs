//! Reading the records index (`getRecord`, `listRecords`, `describeRepo`).
//!
//! The index (`record`) is written only by the commit transaction (see [`crate::repo`]), so it
//! always agrees with the repository root. A record's bytes are its block in `repo_block`.

use atp_data::Cid;
use atp_syntax::{Did, Nsid, RecordKey, Tid};
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use crate::Store;
use crate::db::{cid_at, parsed_at, time_at};
use crate::error::StoreError;
use crate::repo::record_uri;

/// Largest page [`Store::list_records`] returns.
pub const MAX_LIST_LIMIT: usize = 100;

/// A record with its index entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Its `at://` URI.
    pub uri: String,
    /// Its collection.
    pub collection: Nsid,
    /// Its record key.
    pub rkey: RecordKey,
    /// Its CID.
    pub cid: Cid,
    /// The revision of the commit that wrote it.
    pub rev: Tid,
    /// When it was indexed.
    pub indexed_at: DateTime<Utc>,
    /// Moderation takedown reference.
    pub takedown_ref: Option<String>,
    /// Its DAG-CBOR bytes.
    pub bytes: Vec<u8>,
}

/// Paging for [`Store::list_records`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListRecords {
    /// Page size, capped at [`MAX_LIST_LIMIT`].
    pub limit: usize,
    /// Continue after this record key (exclusive).
    pub cursor: Option<RecordKey>,
    /// `false` (the default, as in `listRecords`): descending record keys, newest TIDs first;
    /// `true`: ascending.
    pub reverse: bool,
}

pub(crate) const RECORD_SELECT: &str =
    "SELECT r.uri, r.collection, r.rkey, r.cid, r.rev, r.indexed_at,
            r.takedown_ref, b.bytes
     FROM record r JOIN repo_block b ON b.did = r.did AND b.cid = r.cid";

pub(crate) fn record_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredRecord> {
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
}

impl Store {
    /// One record (`None`: no such record).
    pub async fn get_record(
        &self,
        did: &Did,
        collection: &Nsid,
        rkey: &RecordKey,
    ) -> Result<Option<StoredRecord>, StoreError> {
        let uri = record_uri(did, collection, rkey);
        self.db()
            .read_quick(move |conn| {
                let sql = format!("{RECORD_SELECT} WHERE r.uri = ?1");
                Ok(conn
                    .prepare_cached(&sql)?
                    .query_row([uri], record_from_row)
                    .optional()?)
            })
            .await
    }

    /// One page of a collection's records, ordered by record key (see [`ListRecords`]).
    pub async fn list_records(
        &self,
        did: &Did,
        collection: &Nsid,
        page: ListRecords,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        let (did, collection) = (did.clone(), collection.clone());
        let limit = i64::try_from(page.limit.min(MAX_LIST_LIMIT)).unwrap_or(0);
        self.db()
            .read(move |conn| {
                let (cmp, order) = if page.reverse {
                    (">", "ASC")
                } else {
                    ("<", "DESC")
                };
                let cursor_filter = if page.cursor.is_some() {
                    format!("AND r.rkey {cmp} ?3")
                } else {
                    "AND ?3 IS NULL".to_owned()
                };
                let sql = format!(
                    "{RECORD_SELECT} WHERE r.did = ?1 AND r.collection = ?2 {cursor_filter}
                     ORDER BY r.rkey {order} LIMIT ?4"
                );
                let mut stmt = conn.prepare_cached(&sql)?;
                let rows = stmt.query_map(
                    params![
                        did.as_str(),
                        collection.as_str(),
                        page.cursor.as_ref().map(|c| c.as_str()),
                        limit
                    ],
                    record_from_row,
                )?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await
    }

    /// The collections the repository has records in, sorted.
    pub async fn list_collections(&self, did: &Did) -> Result<Vec<Nsid>, StoreError> {
        let did = did.clone();
        self.db()
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT DISTINCT collection FROM record WHERE did = ?1 ORDER BY collection",
                )?;
                let rows = stmt.query_map([did.as_str()], |r| parsed_at(r, 0))?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await
    }

    /// How many records the repository has.
    pub async fn count_records(&self, did: &Did) -> Result<u64, StoreError> {
        let did = did.clone();
        self.db()
            .read(move |conn| {
                let n: i64 = conn
                    .prepare_cached("SELECT COUNT(*) FROM record WHERE did = ?1")?
                    .query_row([did.as_str()], |r| r.get(0))?;
                Ok(u64::try_from(n).unwrap_or(0))
            })
            .await
    }

    /// Sets or clears a record's takedown reference; returns whether the record exists.
    pub async fn set_record_takedown(
        &self,
        did: &Did,
        collection: &Nsid,
        rkey: &RecordKey,
        takedown_ref: Option<String>,
    ) -> Result<bool, StoreError> {
        let uri = record_uri(did, collection, rkey);
        self.db()
            .write(move |conn| {
                Ok(conn
                    .prepare_cached("UPDATE record SET takedown_ref = ?2 WHERE uri = ?1")?
                    .execute(params![uri, takedown_ref])?
                    > 0)
            })
            .await
    }
}
