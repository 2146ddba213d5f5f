//! The atomic repository commit, and reading the repository root.
//!
//! [`Store::commit_repo`] persists an `atp_repo::CommitData` in one transaction: blocks, the
//! records index, blob states, the new root (compare-and-set on the previous commit) and the
//! event. [`apply`] is the same work without the event, shared with account creation.

use std::collections::{BTreeMap, BTreeSet};

use atp_data::Cid;
use atp_data::blob::BlobRef;
use atp_repo::{BlockMap, CommitData, RepoHead, SignedCommit, WriteAction};
use atp_syntax::{Did, Nsid, RecordKey, Tid};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use crate::Store;
use crate::blob::{self, BlobChanges, PromotedBlob};
use crate::db::{cid_at, exists, millis, parsed_at};
use crate::error::StoreError;
use crate::event::{self, NewEvent};

/// What to do when a record references a blob this account never uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingBlobs {
    /// Refuse the commit with [`StoreError::BlobNotFound`] (normal writes).
    #[default]
    Reject,
    /// Record the blob as `expected`, to be uploaded later (repository import; see
    /// [`Store::list_missing_blobs`]).
    Expect,
}

/// A formatted commit and what the store needs to index it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoCommit {
    /// The commit, from `atp_repo::format_commit` / `format_genesis`. Its `new_blocks` are
    /// trusted to match their CIDs (atp-repo computed them).
    pub commit: CommitData,
    /// The blobs referenced by each created or updated record, by repository path
    /// (`collection/rkey`); paths without blobs may be left out. The caller has the record values
    /// (`atp_data::blob::collect`); [`RepoCommit::with_blobs_from_blocks`] derives them instead.
    pub record_blobs: BTreeMap<String, Vec<BlobRef>>,
    /// What to do about referenced blobs that were never uploaded.
    pub missing_blobs: MissingBlobs,
}

impl RepoCommit {
    /// A commit whose records reference no blobs.
    pub fn new(commit: CommitData) -> Self {
        RepoCommit {
            commit,
            record_blobs: BTreeMap::new(),
            missing_blobs: MissingBlobs::Reject,
        }
    }

    /// A commit whose record blob references are read from its record blocks (decoding each
    /// created or updated record).
    pub fn with_blobs_from_blocks(
        did: &Did,
        commit: CommitData,
        missing_blobs: MissingBlobs,
    ) -> Result<Self, StoreError> {
        let mut record_blobs = BTreeMap::new();
        for op in &commit.ops {
            let Some(cid) = op.cid else { continue };
            let bytes = commit.new_blocks.get(&cid).ok_or_else(|| {
                invalid(
                    did,
                    format!(
                        "record block {cid} of {} is not among the new blocks",
                        op.path
                    ),
                )
            })?;
            let value = atp_data::cbor::from_slice(bytes)
                .map_err(|e| invalid(did, format!("record {} does not decode: {e}", op.path)))?;
            let refs = atp_data::blob::collect(&value);
            if !refs.is_empty() {
                record_blobs.insert(op.path.clone(), refs);
            }
        }
        Ok(RepoCommit {
            commit,
            record_blobs,
            missing_blobs,
        })
    }
}

/// What a committed repository write changed besides the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitOutcome {
    /// The event's sequence number.
    pub seq: i64,
    /// Blobs that became permanent; their files must move from temporary to permanent storage
    /// (see [`Store::finish_blob_promotion`]).
    pub promoted_blobs: Vec<PromotedBlob>,
    /// Blobs no record references any more; their rows are gone and their files may be deleted
    /// now (while still holding the account's [`crate::RepoGuard`]).
    pub unreferenced_blobs: Vec<Cid>,
}

/// A repository's current root, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoRoot {
    /// CID of the current commit block.
    pub commit: Cid,
    /// Its revision.
    pub rev: Tid,
    /// CID of its MST root.
    pub data: Cid,
}

/// One record-index change derived from an op.
struct IndexChange<'a> {
    path: &'a str,
    uri: String,
    collection: Nsid,
    rkey: RecordKey,
    /// The new record CID; `None` for a delete.
    cid: Option<Cid>,
}

fn invalid(did: &Did, reason: String) -> StoreError {
    StoreError::InvalidCommit {
        did: did.clone(),
        reason,
    }
}

/// The record URI of `did`'s record at `collection/rkey`.
pub(crate) fn record_uri(did: &Did, collection: &Nsid, rkey: &RecordKey) -> String {
    format!("at://{did}/{collection}/{rkey}")
}

/// Checks the commit against the request and derives the index changes; touches nothing.
fn plan<'a>(did: &Did, repo: &'a RepoCommit) -> Result<Vec<IndexChange<'a>>, StoreError> {
    let commit = &repo.commit;
    if commit.commit.did() != did {
        return Err(invalid(
            did,
            format!("commit is signed for {}", commit.commit.did()),
        ));
    }
    if !commit.new_blocks.contains_key(&commit.cid) {
        return Err(invalid(
            did,
            "the commit block is not among the new blocks".to_owned(),
        ));
    }
    let mut writes = BTreeSet::new();
    let mut changes = Vec::with_capacity(commit.ops.len());
    for op in &commit.ops {
        let (collection, rkey) = op
            .path
            .split_once('/')
            .and_then(|(c, r)| Some((c.parse::<Nsid>().ok()?, r.parse::<RecordKey>().ok()?)))
            .ok_or_else(|| invalid(did, format!("malformed record path {:?}", op.path)))?;
        let cid = match (op.action, op.cid) {
            (WriteAction::Delete, None) => None,
            (WriteAction::Create | WriteAction::Update, Some(cid)) => {
                writes.insert(op.path.as_str());
                Some(cid)
            }
            _ => {
                return Err(invalid(
                    did,
                    format!("op on {} has the wrong CIDs", op.path),
                ));
            }
        };
        changes.push(IndexChange {
            path: &op.path,
            uri: record_uri(did, &collection, &rkey),
            collection,
            rkey,
            cid,
        });
    }
    if let Some(path) = repo
        .record_blobs
        .keys()
        .find(|p| !writes.contains(p.as_str()))
    {
        return Err(invalid(
            did,
            format!("blob refs given for {path}, which no create or update op writes"),
        ));
    }
    Ok(changes)
}

/// Fails with [`StoreError::RootMoved`] unless the stored root is `expected`.
fn check_root(conn: &Connection, did: &Did, expected: Option<Cid>) -> Result<(), StoreError> {
    let found = conn
        .prepare_cached("SELECT commit_cid FROM repo_root WHERE did = ?1")?
        .query_row([did.as_str()], |r| cid_at(r, 0))
        .optional()?;
    if found != expected {
        return Err(StoreError::RootMoved {
            did: did.clone(),
            found,
        });
    }
    Ok(())
}

/// Inserts blocks tagged with `rev` (a block already present takes the new revision).
pub(crate) fn put_blocks(
    conn: &Connection,
    did: &Did,
    blocks: &BlockMap,
    rev: &Tid,
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO repo_block (did, cid, rev, bytes) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (did, cid) DO UPDATE SET rev = excluded.rev",
    )?;
    for (cid, bytes) in blocks {
        stmt.execute(params![did.as_str(), cid.to_bytes(), rev.as_str(), bytes])?;
    }
    Ok(())
}

/// Deletes blocks, except those a record row of this repository still points at (two records
/// with identical content share one block; the MST diff cannot see the other path).
fn delete_unreferenced_blocks<'a>(
    conn: &Connection,
    did: &Did,
    cids: impl IntoIterator<Item = &'a Cid>,
) -> Result<(), StoreError> {
    let mut delete = conn.prepare_cached("DELETE FROM repo_block WHERE did = ?1 AND cid = ?2")?;
    for cid in cids {
        let bytes = cid.to_bytes();
        if !exists(
            conn,
            "SELECT 1 FROM record WHERE did = ?1 AND cid = ?2",
            params![did.as_str(), bytes],
        )? {
            delete.execute(params![did.as_str(), bytes])?;
        }
    }
    Ok(())
}

/// Applies one index change: the record row, its blob links and the blob states.
fn index_record(
    conn: &Connection,
    did: &Did,
    repo: &RepoCommit,
    change: &IndexChange<'_>,
    now: &DateTime<Utc>,
    blobs: &mut BlobChanges,
) -> Result<(), StoreError> {
    blobs
        .candidates
        .extend(blob::linked_blobs(conn, &change.uri)?);
    let Some(cid) = change.cid else {
        // ON DELETE CASCADE removes the record's blob links.
        conn.prepare_cached("DELETE FROM record WHERE uri = ?1")?
            .execute([&change.uri])?;
        return Ok(());
    };
    conn.prepare_cached("DELETE FROM record_blob WHERE record_uri = ?1")?
        .execute([&change.uri])?;
    conn.prepare_cached(
        "INSERT INTO record (uri, did, collection, rkey, cid, rev, indexed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (uri) DO UPDATE
         SET cid = excluded.cid, rev = excluded.rev, indexed_at = excluded.indexed_at",
    )?
    .execute(params![
        change.uri,
        did.as_str(),
        change.collection.as_str(),
        change.rkey.as_str(),
        cid.to_bytes(),
        repo.commit.rev.as_str(),
        millis(now),
    ])?;
    for blob_ref in repo.record_blobs.get(change.path).into_iter().flatten() {
        blob::link(
            conn,
            did,
            &change.uri,
            blob_ref,
            repo.missing_blobs,
            now,
            blobs,
        )?;
    }
    Ok(())
}

/// Persists `repo` inside the current transaction: checks, blocks, records, blobs, root.
pub(crate) fn apply(
    conn: &Connection,
    did: &Did,
    repo: &RepoCommit,
    now: &DateTime<Utc>,
) -> Result<BlobChanges, StoreError> {
    let changes = plan(did, repo)?;
    if !exists(conn, "SELECT 1 FROM account WHERE did = ?1", [did.as_str()])? {
        return Err(StoreError::AccountNotFound { did: did.clone() });
    }
    let commit = &repo.commit;
    check_root(conn, did, commit.prev)?;
    put_blocks(conn, did, &commit.new_blocks, &commit.rev)?;
    let mut blobs = BlobChanges::default();
    for change in &changes {
        index_record(conn, did, repo, change, now, &mut blobs)?;
    }
    blob::settle(conn, did, &mut blobs)?;
    delete_unreferenced_blocks(conn, did, &commit.removed_cids)?;
    conn.prepare_cached(
        "INSERT INTO repo_root (did, commit_cid, rev, data_cid, indexed_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (did) DO UPDATE SET commit_cid = excluded.commit_cid,
             rev = excluded.rev, data_cid = excluded.data_cid, indexed_at = excluded.indexed_at",
    )?
    .execute(params![
        did.as_str(),
        commit.cid.to_bytes(),
        commit.rev.as_str(),
        commit.data.to_bytes(),
        millis(now),
    ])?;
    Ok(blobs)
}

/// Reads the stored root.
pub(crate) fn read_root(conn: &Connection, did: &Did) -> Result<Option<RepoRoot>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT commit_cid, rev, data_cid FROM repo_root WHERE did = ?1")?
        .query_row([did.as_str()], |r| {
            Ok(RepoRoot {
                commit: cid_at(r, 0)?,
                rev: parsed_at(r, 1)?,
                data: cid_at(r, 2)?,
            })
        })
        .optional()?)
}

impl Store {
    /// Persists a repository commit and its event atomically, in one transaction:
    /// - refuses with [`StoreError::RootMoved`] (writing nothing) unless the stored root is the
    ///   commit's `prev` (`None`: no repository yet);
    /// - inserts the new blocks tagged with the commit's rev, and deletes the removed ones that
    ///   no record of this repository still points at;
    /// - updates the records index (`record`, with rev and `indexed_at = now`) and blob links;
    /// - moves referenced temporary blobs to permanent, records missing ones as expected (or
    ///   refuses, see [`MissingBlobs`]), and drops blobs nothing references any more;
    /// - sets the new root and appends `event` (its `seq` is returned).
    ///
    /// Dropping the returned future does not cancel the commit once it was queued.
    pub async fn commit_repo(
        &self,
        did: &Did,
        repo: RepoCommit,
        event: NewEvent,
        now: DateTime<Utc>,
    ) -> Result<CommitOutcome, StoreError> {
        let did = did.clone();
        self.db()
            .write(move |conn| {
                let blobs = apply(conn, &did, &repo, &now)?;
                let seq = event::append(conn, &did, &event, &now)?;
                Ok(CommitOutcome {
                    seq,
                    promoted_blobs: blobs.promoted,
                    unreferenced_blobs: blobs.unreferenced,
                })
            })
            .await
    }

    /// The repository's current root (`None`: no repository).
    pub async fn repo_root(&self, did: &Did) -> Result<Option<RepoRoot>, StoreError> {
        let did = did.clone();
        self.db()
            .read_quick(move |conn| read_root(conn, &did))
            .await
    }

    /// The repository's current head, with its commit block decoded (`None`: no repository).
    pub async fn repo_head(&self, did: &Did) -> Result<Option<RepoHead>, StoreError> {
        let did = did.clone();
        self.db()
            .read_quick(move |conn| {
                let Some(root) = read_root(conn, &did)? else {
                    return Ok(None);
                };
                let bytes: Vec<u8> = conn
                    .prepare_cached("SELECT bytes FROM repo_block WHERE did = ?1 AND cid = ?2")?
                    .query_row(params![did.as_str(), root.commit.to_bytes()], |r| r.get(0))
                    .optional()?
                    .ok_or_else(|| StoreError::Corrupt {
                        reason: format!("commit block {} of {did} is missing", root.commit),
                    })?;
                let commit = SignedCommit::from_cbor(&bytes).map_err(|e| StoreError::Corrupt {
                    reason: format!("commit block {} of {did}: {e}", root.commit),
                })?;
                Ok(Some(RepoHead {
                    cid: root.commit,
                    commit,
                }))
            })
            .await
    }
}
