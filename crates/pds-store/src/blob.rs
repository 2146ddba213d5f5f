//! Blob metadata and its lifecycle. The bytes live elsewhere (files or object storage); this
//! table says which blobs an account has and in which state.
//!
//! States (`blob.status`):
//! - `temporary`: uploaded (`uploadBlob`), not referenced by any record yet; the file is in
//!   temporary storage under `temp_key`. Unreferenced temporary blobs are garbage-collected
//!   ([`Store::stale_temporary_blobs`], [`Store::delete_temporary_blob`]).
//! - `permanent`: referenced by at least one record. While `temp_key` is still set, the file has
//!   not been moved out of temporary storage yet: the commit that promoted it returned a
//!   [`PromotedBlob`]; the caller moves the file and then calls
//!   [`Store::finish_blob_promotion`]. After a crash, [`Store::pending_blob_promotions`] lists
//!   the moves to redo.
//! - `expected`: referenced by an imported record but not uploaded yet (no file);
//!   `listMissingBlobs` lists these. Uploading one makes it permanent (pending its move).
//!
//! When no record references a permanent or expected blob any more, the commit deletes its row
//! and reports it ([`crate::CommitOutcome::unreferenced_blobs`]) so the file can be deleted
//! after the commit. A crash in between only leaves an orphaned file.

use std::collections::BTreeSet;

use atp_data::Cid;
use atp_data::blob::BlobRef;
use atp_syntax::{Did, Tid};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use crate::Store;
use crate::db::{cid_at, millis, parsed_at, time_at};
use crate::error::StoreError;
use crate::repo::MissingBlobs;

/// A blob's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlobStatus {
    /// Uploaded, not referenced yet.
    Temporary,
    /// Referenced by a record.
    Permanent,
    /// Referenced by an imported record, not uploaded yet.
    Expected,
}

impl BlobStatus {
    /// The stored name.
    pub fn as_str(&self) -> &'static str {
        match self {
            BlobStatus::Temporary => "temporary",
            BlobStatus::Permanent => "permanent",
            BlobStatus::Expected => "expected",
        }
    }
}

/// An unknown blob status name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown blob status {0:?}")]
pub struct UnknownBlobStatus(pub String);

impl std::str::FromStr for BlobStatus {
    type Err = UnknownBlobStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "temporary" => Ok(BlobStatus::Temporary),
            "permanent" => Ok(BlobStatus::Permanent),
            "expected" => Ok(BlobStatus::Expected),
            other => Err(UnknownBlobStatus(other.to_owned())),
        }
    }
}

/// A blob's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    /// The blob's CID.
    pub cid: Cid,
    /// Its MIME type (as uploaded; for an expected blob, as declared by the record).
    pub mime_type: String,
    /// Its size in bytes (same caveat).
    pub size: u64,
    /// Its state.
    pub status: BlobStatus,
    /// Key of the file in temporary storage, while it is there.
    pub temp_key: Option<String>,
    /// When the row was created.
    pub created_at: DateTime<Utc>,
    /// Moderation takedown reference.
    pub takedown_ref: Option<String>,
}

/// A freshly uploaded blob, already written to temporary storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUpload {
    /// The blob's CID.
    pub cid: Cid,
    /// Its MIME type.
    pub mime_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// Key of the file in temporary storage.
    pub temp_key: String,
}

/// What [`Store::register_upload`] did, and what the caller must do with the new file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadOutcome {
    /// Stored as temporary; keep the file until a commit promotes it.
    Temporary,
    /// It was already temporary: the row now points at the new file; `old_temp_key`'s file can
    /// be deleted.
    ReplacedTemporary {
        /// The previous file's key.
        old_temp_key: Option<String>,
    },
    /// It is already stored permanently: delete the new file.
    AlreadyPermanent,
    /// A record was waiting for it (`expected`): it is now permanent, pending its move; move the
    /// file to permanent storage, then call [`Store::finish_blob_promotion`].
    Promoted,
}

/// A blob a commit made permanent whose file still has to move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromotedBlob {
    /// The blob's CID.
    pub cid: Cid,
    /// Key of the file in temporary storage.
    pub temp_key: Option<String>,
}

/// A blob file in temporary storage: a promotion whose move is not confirmed
/// ([`Store::pending_blob_promotions`]) or a stale upload ([`Store::stale_temporary_blobs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TempBlobFile {
    /// The account.
    pub did: Did,
    /// The blob's CID.
    pub cid: Cid,
    /// Key of the file in temporary storage.
    pub temp_key: String,
}

/// A blob referenced by a record but not uploaded (`listMissingBlobs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingBlob {
    /// The blob's CID.
    pub cid: Cid,
    /// One record that references it.
    pub record_uri: String,
}

/// Counts for `checkAccountStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobCounts {
    /// Distinct blobs referenced by records.
    pub expected: u64,
    /// Of those, blobs that were uploaded (temporary or permanent).
    pub imported: u64,
}

/// Blob state changes collected during one commit.
#[derive(Debug, Default)]
pub(crate) struct BlobChanges {
    /// Blobs made permanent by this commit.
    pub(crate) promoted: Vec<PromotedBlob>,
    /// Blobs that lost a link; checked at the end of the commit.
    pub(crate) candidates: BTreeSet<Cid>,
    /// Permanent blobs that lost their last link (rows deleted).
    pub(crate) unreferenced: Vec<Cid>,
}

/// The blobs a record currently links to.
pub(crate) fn linked_blobs(conn: &Connection, uri: &str) -> Result<Vec<Cid>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT blob_cid FROM record_blob WHERE record_uri = ?1")?;
    let rows = stmt.query_map([uri], |r| cid_at(r, 0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Links a record to a blob and brings the blob to `permanent` (or `expected`).
pub(crate) fn link(
    conn: &Connection,
    did: &Did,
    uri: &str,
    blob: &BlobRef,
    missing: MissingBlobs,
    now: &DateTime<Utc>,
    changes: &mut BlobChanges,
) -> Result<(), StoreError> {
    let cid = blob.cid.to_bytes();
    let state: Option<(BlobStatus, Option<String>)> = conn
        .prepare_cached("SELECT status, temp_key FROM blob WHERE did = ?1 AND cid = ?2")?
        .query_row(params![did.as_str(), cid], |r| {
            Ok((parsed_at(r, 0)?, r.get(1)?))
        })
        .optional()?;
    match (state, missing) {
        (Some((BlobStatus::Permanent, _)), _)
        | (Some((BlobStatus::Expected, _)), MissingBlobs::Expect) => {}
        (Some((BlobStatus::Temporary, temp_key)), _) => {
            conn.prepare_cached(
                "UPDATE blob SET status = 'permanent' WHERE did = ?1 AND cid = ?2",
            )?
            .execute(params![did.as_str(), cid])?;
            changes.promoted.push(PromotedBlob {
                cid: blob.cid,
                temp_key,
            });
        }
        (None, MissingBlobs::Expect) => {
            conn.prepare_cached(
                "INSERT INTO blob (did, cid, mime_type, size, status, created_at)
                 VALUES (?1, ?2, ?3, ?4, 'expected', ?5)",
            )?
            .execute(params![
                did.as_str(),
                cid,
                blob.mime_type,
                i64::try_from(blob.size).unwrap_or(i64::MAX),
                millis(now)
            ])?;
        }
        (None | Some((BlobStatus::Expected, _)), MissingBlobs::Reject) => {
            return Err(StoreError::BlobNotFound { cid: blob.cid });
        }
    }
    conn.prepare_cached(
        "INSERT OR IGNORE INTO record_blob (record_uri, blob_cid, did) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![uri, cid, did.as_str()])?;
    Ok(())
}

/// Deletes the rows of candidate blobs that no record links to any more; permanent ones are
/// reported as unreferenced (their files can go). A temporary blob keeps its row (it will be
/// garbage-collected as stale).
pub(crate) fn settle(
    conn: &Connection,
    did: &Did,
    changes: &mut BlobChanges,
) -> Result<(), StoreError> {
    for cid in std::mem::take(&mut changes.candidates) {
        let bytes = cid.to_bytes();
        if crate::db::exists(
            conn,
            "SELECT 1 FROM record_blob WHERE did = ?1 AND blob_cid = ?2",
            params![did.as_str(), bytes],
        )? {
            continue;
        }
        let status: Option<BlobStatus> = conn
            .prepare_cached(
                "DELETE FROM blob WHERE did = ?1 AND cid = ?2 AND status != 'temporary'
                 RETURNING status",
            )?
            .query_row(params![did.as_str(), bytes], |r| parsed_at(r, 0))
            .optional()?;
        if status == Some(BlobStatus::Permanent) {
            changes.unreferenced.push(cid);
        }
    }
    Ok(())
}

fn meta_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<BlobMeta> {
    Ok(BlobMeta {
        cid: cid_at(row, 0)?,
        mime_type: row.get(1)?,
        size: u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
        status: parsed_at(row, 3)?,
        temp_key: row.get(4)?,
        created_at: time_at(row, 5)?,
        takedown_ref: row.get(6)?,
    })
}

fn to_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Records an upload (see [`Store::register_upload`]).
fn register(
    conn: &Connection,
    did: &Did,
    upload: &NewUpload,
    now: &DateTime<Utc>,
) -> Result<UploadOutcome, StoreError> {
    let cid = upload.cid.to_bytes();
    let size = i64::try_from(upload.size).unwrap_or(i64::MAX);
    let state: Option<(BlobStatus, Option<String>)> = conn
        .prepare_cached("SELECT status, temp_key FROM blob WHERE did = ?1 AND cid = ?2")?
        .query_row(params![did.as_str(), cid], |r| {
            Ok((parsed_at(r, 0)?, r.get(1)?))
        })
        .optional()?;
    let (status, outcome) = match state {
        None => {
            conn.prepare_cached(
                "INSERT INTO blob (did, cid, mime_type, size, status, temp_key, created_at)
                 VALUES (?1, ?2, ?3, ?4, 'temporary', ?5, ?6)",
            )?
            .execute(params![
                did.as_str(),
                cid,
                upload.mime_type,
                size,
                upload.temp_key,
                millis(now)
            ])?;
            return Ok(UploadOutcome::Temporary);
        }
        Some((BlobStatus::Permanent, _)) => return Ok(UploadOutcome::AlreadyPermanent),
        Some((BlobStatus::Temporary, old_temp_key)) => (
            BlobStatus::Temporary,
            UploadOutcome::ReplacedTemporary { old_temp_key },
        ),
        Some((BlobStatus::Expected, _)) => (BlobStatus::Permanent, UploadOutcome::Promoted),
    };
    conn.prepare_cached(
        "UPDATE blob SET status = ?3, mime_type = ?4, size = ?5, temp_key = ?6
         WHERE did = ?1 AND cid = ?2",
    )?
    .execute(params![
        did.as_str(),
        cid,
        status.as_str(),
        upload.mime_type,
        size,
        upload.temp_key
    ])?;
    Ok(outcome)
}

impl Store {
    /// Records a blob upload whose file is already in temporary storage; see [`UploadOutcome`]
    /// for what to do with the file.
    pub async fn register_upload(
        &self,
        did: &Did,
        upload: NewUpload,
        now: DateTime<Utc>,
    ) -> Result<UploadOutcome, StoreError> {
        let did = did.clone();
        self.db()
            .write(move |conn| register(conn, &did, &upload, &now))
            .await
    }

    /// A blob's metadata (`None`: this account has no such blob).
    pub async fn get_blob(&self, did: &Did, cid: &Cid) -> Result<Option<BlobMeta>, StoreError> {
        let (did, cid) = (did.clone(), cid.to_bytes());
        self.db()
            .read(move |conn| {
                Ok(conn
                    .prepare_cached(
                        "SELECT cid, mime_type, size, status, temp_key, created_at, takedown_ref
                         FROM blob WHERE did = ?1 AND cid = ?2",
                    )?
                    .query_row(params![did.as_str(), cid], meta_from_row)
                    .optional()?)
            })
            .await
    }

    /// Marks a promoted blob's file as moved to permanent storage (clears its `temp_key`).
    pub async fn finish_blob_promotion(&self, did: &Did, cid: &Cid) -> Result<(), StoreError> {
        let (did, cid) = (did.clone(), cid.to_bytes());
        self.db()
            .write(move |conn| {
                conn.prepare_cached(
                    "UPDATE blob SET temp_key = NULL
                     WHERE did = ?1 AND cid = ?2 AND status = 'permanent'",
                )?
                .execute(params![did.as_str(), cid])?;
                Ok(())
            })
            .await
    }

    /// Permanent blobs whose file move was not confirmed (e.g. after a crash), up to `limit`.
    pub async fn pending_blob_promotions(
        &self,
        limit: usize,
    ) -> Result<Vec<TempBlobFile>, StoreError> {
        self.db()
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT did, cid, temp_key FROM blob
                     WHERE status = 'permanent' AND temp_key IS NOT NULL LIMIT ?1",
                )?;
                let rows = stmt.query_map([to_limit(limit)], |r| {
                    Ok(TempBlobFile {
                        did: parsed_at(r, 0)?,
                        cid: cid_at(r, 1)?,
                        temp_key: r.get(2)?,
                    })
                })?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await
    }

    /// Expected (referenced, never uploaded) blobs in CID byte order after `after`, up to
    /// `limit`, each with one record that references it (`listMissingBlobs`).
    pub async fn list_missing_blobs(
        &self,
        did: &Did,
        after: Option<Cid>,
        limit: usize,
    ) -> Result<Vec<MissingBlob>, StoreError> {
        let did = did.clone();
        let after = after.map(|c| c.to_bytes()).unwrap_or_default();
        self.db()
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT b.cid, (SELECT MIN(rb.record_uri) FROM record_blob rb
                                    WHERE rb.did = b.did AND rb.blob_cid = b.cid)
                     FROM blob b
                     WHERE b.did = ?1 AND b.status = 'expected' AND b.cid > ?2
                     ORDER BY b.cid LIMIT ?3",
                )?;
                let rows = stmt.query_map(params![did.as_str(), after, to_limit(limit)], |r| {
                    Ok(MissingBlob {
                        cid: cid_at(r, 0)?,
                        record_uri: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    })
                })?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await
    }

    /// CIDs of blobs referenced by records written after revision `since` (all when `None`), in
    /// CID byte order after `after`, up to `limit` (`com.atproto.sync.listBlobs`).
    pub async fn list_blobs(
        &self,
        did: &Did,
        since: Option<Tid>,
        after: Option<Cid>,
        limit: usize,
    ) -> Result<Vec<Cid>, StoreError> {
        let did = did.clone();
        let since = since.map(|t| t.as_str().to_owned()).unwrap_or_default();
        let after = after.map(|c| c.to_bytes()).unwrap_or_default();
        self.db()
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT DISTINCT rb.blob_cid FROM record_blob rb
                     JOIN record r ON r.uri = rb.record_uri
                     WHERE rb.did = ?1 AND r.rev > ?2 AND rb.blob_cid > ?3
                     ORDER BY rb.blob_cid LIMIT ?4",
                )?;
                let rows = stmt
                    .query_map(params![did.as_str(), since, after, to_limit(limit)], |r| {
                        cid_at(r, 0)
                    })?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await
    }

    /// How many distinct blobs records reference, and how many of those were uploaded.
    pub async fn blob_counts(&self, did: &Did) -> Result<BlobCounts, StoreError> {
        let did = did.clone();
        self.db()
            .read(move |conn| {
                let (expected, imported): (i64, i64) = conn.query_row(
                    "SELECT COUNT(DISTINCT rb.blob_cid),
                            COUNT(DISTINCT CASE WHEN b.status IN ('temporary', 'permanent')
                                           THEN rb.blob_cid END)
                     FROM record_blob rb
                     LEFT JOIN blob b ON b.did = rb.did AND b.cid = rb.blob_cid
                     WHERE rb.did = ?1",
                    [did.as_str()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                Ok(BlobCounts {
                    expected: u64::try_from(expected).unwrap_or(0),
                    imported: u64::try_from(imported).unwrap_or(0),
                })
            })
            .await
    }

    /// Temporary blobs uploaded before `before`, up to `limit`: garbage to collect.
    pub async fn stale_temporary_blobs(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<TempBlobFile>, StoreError> {
        self.db()
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT did, cid, temp_key FROM blob
                     WHERE status = 'temporary' AND created_at < ?1 LIMIT ?2",
                )?;
                let rows = stmt.query_map(params![millis(&before), to_limit(limit)], |r| {
                    Ok(TempBlobFile {
                        did: parsed_at(r, 0)?,
                        cid: cid_at(r, 1)?,
                        temp_key: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    })
                })?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await
    }

    /// Deletes a blob's row if it is still temporary and unreferenced; returns its `temp_key`
    /// (the file to delete), or `None` if nothing was deleted.
    pub async fn delete_temporary_blob(
        &self,
        did: &Did,
        cid: &Cid,
    ) -> Result<Option<String>, StoreError> {
        let (did, cid) = (did.clone(), cid.to_bytes());
        self.db()
            .write(move |conn| {
                let key: Option<Option<String>> = conn
                    .prepare_cached(
                        "DELETE FROM blob WHERE did = ?1 AND cid = ?2 AND status = 'temporary'
                         AND NOT EXISTS (SELECT 1 FROM record_blob rb
                                         WHERE rb.did = ?1 AND rb.blob_cid = ?2)
                         RETURNING temp_key",
                    )?
                    .query_row(params![did.as_str(), cid], |r| r.get(0))
                    .optional()?;
                Ok(key.flatten())
            })
            .await
    }
}
