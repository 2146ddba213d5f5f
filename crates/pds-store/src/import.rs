//! Repository import (account migration) and the re-signed head of an activated account.
//!
//! An import must change nothing unless it succeeds as a whole, yet a repository CAR may be far
//! larger than memory. So it goes in three steps, each bounded in memory:
//! 1. staging: the CAR's blocks go into `import_block` (keyed by the account), in batches,
//!    through [`ImportStaging`] (an `atp_repo::BlockStore`, so `atp_repo::stage_car` writes it);
//! 2. verification: the caller walks the staged tree (`atp_repo::Traversal`), marks the MST nodes
//!    it reached ([`ImportStaging::mark_nodes`]) and stages each record with its blob references
//!    ([`ImportStaging::stage_records`], table `import_record` / `import_record_blob`);
//! 3. switch-over: [`Store::finish_import`] replaces the account's repository in ONE transaction
//!    (blocks reachable from the commit, records index, blob links and states, root) and clears
//!    the staging rows.
//!
//! Staging rows of a failed or interrupted import are dropped by the next import of the account
//! ([`ImportStaging::clear`]) or with the account (`ON DELETE CASCADE`). The caller holds the
//! account's [`crate::RepoGuard`] from step 1 to step 3. No event is written by an import: the
//! account is deactivated, and its activation announces the repository with `#sync`.

use atp_data::Cid;
use atp_data::blob::BlobRef;
use atp_repo::{BlockMap, BlockStore, FoundBlocks};
use atp_syntax::{Did, Nsid, RecordKey, Tid};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use crate::Store;
use crate::blob::{self, BlobChanges, BlobStatus, PromotedBlob};
use crate::db::{cid_at, exists, millis, parsed_at};
use crate::error::StoreError;
use crate::event::{self, NewEvent};
use crate::repo::{MissingBlobs, put_blocks, read_root};

/// One account's import staging area. Cheap to clone.
#[derive(Clone)]
pub struct ImportStaging {
    store: Store,
    did: Did,
}

impl std::fmt::Debug for ImportStaging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportStaging")
            .field("did", &self.did)
            .finish_non_exhaustive()
    }
}

/// A record of an imported repository, as the tree walk found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedRecord {
    /// Its collection.
    pub collection: Nsid,
    /// Its record key.
    pub rkey: RecordKey,
    /// Its CID.
    pub cid: Cid,
    /// The blobs it references.
    pub blobs: Vec<BlobRef>,
}

/// The head of an imported repository: the staged commit block's CID, the revision to record
/// (the commit's own) and the MST root.
pub type ImportedHead = crate::repo::RepoRoot;

/// What [`Store::finish_import`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOutcome {
    /// Blocks the repository now has.
    pub blocks: u64,
    /// Records indexed.
    pub records: u64,
    /// Blobs uploaded before the import that records now reference: move their files to
    /// permanent storage, then call [`Store::finish_blob_promotion`].
    pub promoted_blobs: Vec<PromotedBlob>,
    /// Permanent blobs no record references any more (rows gone; files may be deleted).
    pub unreferenced_blobs: Vec<Cid>,
}

/// A new head for an account being activated: its current commit re-signed (same data, newer
/// revision) with the key its DID document names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResignedHead {
    /// The commit it replaces (compare-and-set).
    pub prev: Cid,
    /// The new commit block's CID.
    pub commit: Cid,
    /// The new commit block.
    pub bytes: Vec<u8>,
    /// Its revision.
    pub rev: Tid,
    /// Its MST root (unchanged).
    pub data: Cid,
}

impl Store {
    /// The import staging area of `did`.
    pub fn import_staging(&self, did: &Did) -> ImportStaging {
        ImportStaging {
            store: self.clone(),
            did: did.clone(),
        }
    }
}

fn clear_staged(conn: &Connection, did: &Did) -> Result<(), StoreError> {
    for table in ["import_block", "import_record", "import_record_blob"] {
        conn.prepare_cached(&format!("DELETE FROM {table} WHERE did = ?1"))?
            .execute([did.as_str()])?;
    }
    Ok(())
}

impl ImportStaging {
    /// The account.
    pub fn did(&self) -> &Did {
        &self.did
    }

    /// Drops everything staged for the account (a previous, failed import included).
    pub async fn clear(&self) -> Result<(), StoreError> {
        let did = self.did.clone();
        self.store
            .db()
            .write(move |conn| clear_staged(conn, &did))
            .await
    }

    /// Marks staged blocks as MST nodes of the imported tree (kept by the switch-over).
    pub async fn mark_nodes(&self, cids: Vec<Cid>) -> Result<(), StoreError> {
        let did = self.did.clone();
        self.store
            .db()
            .write(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "UPDATE import_block SET used = 1 WHERE did = ?1 AND cid = ?2",
                )?;
                for cid in cids {
                    stmt.execute(params![did.as_str(), cid.to_bytes()])?;
                }
                Ok(())
            })
            .await
    }

    /// Stages records and their blob references.
    pub async fn stage_records(&self, records: Vec<StagedRecord>) -> Result<(), StoreError> {
        let did = self.did.clone();
        self.store
            .db()
            .write(move |conn| {
                let mut record = conn.prepare_cached(
                    "INSERT INTO import_record (did, collection, rkey, cid) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (did, collection, rkey) DO UPDATE SET cid = excluded.cid",
                )?;
                let mut blob = conn.prepare_cached(
                    "INSERT OR IGNORE INTO import_record_blob
                         (did, collection, rkey, blob_cid, mime_type, size)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                for r in &records {
                    let (c, k) = (r.collection.as_str(), r.rkey.as_str());
                    record.execute(params![did.as_str(), c, k, r.cid.to_bytes()])?;
                    for b in &r.blobs {
                        let size = i64::try_from(b.size).unwrap_or(i64::MAX);
                        blob.execute(params![
                            did.as_str(),
                            c,
                            k,
                            b.cid.to_bytes(),
                            b.mime_type,
                            size
                        ])?;
                    }
                }
                Ok(())
            })
            .await
    }

    async fn fetch(&self, cids: Vec<Cid>) -> Result<FoundBlocks, StoreError> {
        let did = self.did.clone();
        self.store
            .db()
            .read(move |conn| {
                crate::blockstore::fetch_blocks(
                    conn,
                    "SELECT bytes FROM import_block WHERE did = ?1 AND cid = ?2",
                    &did,
                    cids,
                )
            })
            .await
    }
}

impl BlockStore for ImportStaging {
    async fn get_block(&self, cid: &Cid) -> Result<Option<Vec<u8>>, atp_repo::StoreError> {
        let mut found = self.fetch(vec![*cid]).await?;
        Ok(found.blocks.remove(cid))
    }

    async fn has_block(&self, cid: &Cid) -> Result<bool, atp_repo::StoreError> {
        Ok(self.fetch(vec![*cid]).await?.missing.is_empty())
    }

    async fn get_blocks(&self, cids: &[Cid]) -> Result<FoundBlocks, atp_repo::StoreError> {
        Ok(self.fetch(cids.to_vec()).await?)
    }

    /// Checks every block's hash first (nothing is written if one does not match). The revision
    /// is not kept: the switch-over tags blocks with the imported commit's.
    async fn put_blocks(&self, blocks: &BlockMap, _rev: &Tid) -> Result<(), atp_repo::StoreError> {
        crate::blockstore::check_hashes(blocks)?;
        let (did, blocks) = (self.did.clone(), blocks.clone());
        Ok(self
            .store
            .db()
            .write(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "INSERT OR IGNORE INTO import_block (did, cid, bytes) VALUES (?1, ?2, ?3)",
                )?;
                for (cid, bytes) in &blocks {
                    stmt.execute(params![did.as_str(), cid.to_bytes(), bytes])?;
                }
                Ok(())
            })
            .await?)
    }

    async fn delete_blocks(&self, cids: &[Cid]) -> Result<(), atp_repo::StoreError> {
        let (did, cids) = (self.did.clone(), cids.to_vec());
        Ok(self
            .store
            .db()
            .write(move |conn| {
                crate::blockstore::delete_blocks(
                    conn,
                    "DELETE FROM import_block WHERE did = ?1 AND cid = ?2",
                    &did,
                    &cids,
                )
            })
            .await?)
    }
}

/// Links every staged record to its blobs (expected when never uploaded).
fn link_staged_blobs(
    conn: &Connection,
    did: &Did,
    now: &DateTime<Utc>,
    changes: &mut BlobChanges,
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT collection, rkey, blob_cid, mime_type, size FROM import_record_blob
         WHERE did = ?1",
    )?;
    let mut rows = stmt.query([did.as_str()])?;
    while let Some(row) = rows.next()? {
        let collection: String = row.get(0)?;
        let rkey: String = row.get(1)?;
        let blob_ref = BlobRef {
            cid: cid_at(row, 2)?,
            mime_type: row.get(3)?,
            size: u64::try_from(row.get::<_, i64>(4)?).unwrap_or(0),
            legacy: false,
        };
        let uri = format!("at://{did}/{collection}/{rkey}");
        blob::link(
            conn,
            did,
            &uri,
            &blob_ref,
            MissingBlobs::Expect,
            now,
            changes,
        )?;
    }
    Ok(())
}

/// Deletes the rows of permanent and expected blobs no record links to any more; returns the
/// permanent ones (their files can go).
fn drop_unlinked_blobs(conn: &Connection, did: &Did) -> Result<Vec<Cid>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "DELETE FROM blob WHERE did = ?1 AND status != 'temporary'
         AND NOT EXISTS (SELECT 1 FROM record_blob rb WHERE rb.did = blob.did
                         AND rb.blob_cid = blob.cid)
         RETURNING cid, status",
    )?;
    let rows = stmt.query_map([did.as_str()], |r| {
        Ok((cid_at(r, 0)?, parsed_at::<BlobStatus>(r, 1)?))
    })?;
    let mut unreferenced = Vec::new();
    for row in rows {
        let (cid, status) = row?;
        if status == BlobStatus::Permanent {
            unreferenced.push(cid);
        }
    }
    Ok(unreferenced)
}

fn changed(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// The switch-over transaction (see [`Store::finish_import`]).
fn switch_over(
    conn: &Connection,
    did: &Did,
    head: &ImportedHead,
    now: &DateTime<Utc>,
) -> Result<ImportOutcome, StoreError> {
    if !exists(conn, "SELECT 1 FROM account WHERE did = ?1", [did.as_str()])? {
        return Err(StoreError::AccountNotFound { did: did.clone() });
    }
    let commit = head.commit.to_bytes();
    if !exists(
        conn,
        "SELECT 1 FROM import_block WHERE did = ?1 AND cid = ?2",
        params![did.as_str(), commit],
    )? {
        return Err(StoreError::InvalidCommit {
            did: did.clone(),
            reason: format!("the commit block {} was not staged", head.commit),
        });
    }
    // ON DELETE CASCADE removes the old records' blob links.
    conn.prepare_cached("DELETE FROM record WHERE did = ?1")?
        .execute([did.as_str()])?;
    conn.prepare_cached("DELETE FROM repo_block WHERE did = ?1")?
        .execute([did.as_str()])?;
    let blocks = conn
        .prepare_cached(
            "INSERT INTO repo_block (did, cid, rev, bytes)
             SELECT b.did, b.cid, ?2, b.bytes FROM import_block b
             WHERE b.did = ?1 AND (b.used = 1 OR b.cid = ?3 OR EXISTS (
                 SELECT 1 FROM import_record r WHERE r.did = b.did AND r.cid = b.cid))",
        )?
        .execute(params![did.as_str(), head.rev.as_str(), commit])?;
    let records = conn
        .prepare_cached(
            "INSERT INTO record (uri, did, collection, rkey, cid, rev, indexed_at)
             SELECT 'at://' || did || '/' || collection || '/' || rkey, did, collection, rkey,
                    cid, ?2, ?3
             FROM import_record WHERE did = ?1",
        )?
        .execute(params![did.as_str(), head.rev.as_str(), millis(now)])?;
    let mut changes = BlobChanges::default();
    link_staged_blobs(conn, did, now, &mut changes)?;
    let unreferenced_blobs = drop_unlinked_blobs(conn, did)?;
    conn.prepare_cached(
        "INSERT INTO repo_root (did, commit_cid, rev, data_cid, indexed_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (did) DO UPDATE SET commit_cid = excluded.commit_cid,
             rev = excluded.rev, data_cid = excluded.data_cid, indexed_at = excluded.indexed_at",
    )?
    .execute(params![
        did.as_str(),
        commit,
        head.rev.as_str(),
        head.data.to_bytes(),
        millis(now),
    ])?;
    clear_staged(conn, did)?;
    Ok(ImportOutcome {
        blocks: changed(blocks),
        records: changed(records),
        promoted_blobs: changes.promoted,
        unreferenced_blobs,
    })
}

/// Puts the re-signed commit in place of `head.prev` (compare-and-set).
fn replace_head(conn: &Connection, did: &Did, head: &ResignedHead) -> Result<(), StoreError> {
    let root = read_root(conn, did)?;
    if root.as_ref().map(|r| r.commit) != Some(head.prev) {
        return Err(StoreError::RootMoved {
            did: did.clone(),
            found: root.map(|r| r.commit),
        });
    }
    let block = BlockMap::from([(head.commit, head.bytes.clone())]);
    put_blocks(conn, did, &block, &head.rev)?;
    conn.prepare_cached(
        "DELETE FROM repo_block WHERE did = ?1 AND cid = ?2
         AND NOT EXISTS (SELECT 1 FROM record WHERE did = ?1 AND cid = ?2)",
    )?
    .execute(params![did.as_str(), head.prev.to_bytes()])?;
    conn.prepare_cached(
        "UPDATE repo_root SET commit_cid = ?2, rev = ?3, data_cid = ?4 WHERE did = ?1",
    )?
    .execute(params![
        did.as_str(),
        head.commit.to_bytes(),
        head.rev.as_str(),
        head.data.to_bytes()
    ])?;
    Ok(())
}

impl Store {
    /// Replaces `did`'s repository with the staged import whose head is `head`, in one
    /// transaction: the staged blocks reachable from the commit (the commit, the marked MST
    /// nodes, the staged records' blocks) tagged with `head.rev`, the records index, blob links
    /// (blobs never uploaded become `expected`, temporary uploads become permanent), the root;
    /// blobs no record references any more are dropped, and the staging rows cleared. Writes no
    /// event. The caller holds the account's [`crate::RepoGuard`] and has verified the staged
    /// tree.
    pub async fn finish_import(
        &self,
        did: &Did,
        head: ImportedHead,
        now: DateTime<Utc>,
    ) -> Result<ImportOutcome, StoreError> {
        let did = did.clone();
        self.db()
            .write(move |conn| switch_over(conn, &did, &head, &now))
            .await
    }

    /// Reactivates the account, first replacing its head with `head` when given (a re-signed
    /// commit; compare-and-set on `head.prev`; the old commit block is deleted), and appends
    /// `events` (e.g. `#identity`, `#account`, `#sync`), in that order, in one transaction;
    /// returns the events' sequence numbers.
    pub async fn activate_account_with_head(
        &self,
        did: &Did,
        head: Option<ResignedHead>,
        events: Vec<NewEvent>,
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>, StoreError> {
        let did = did.clone();
        self.db()
            .write(move |conn| {
                if let Some(head) = &head {
                    replace_head(conn, &did, head)?;
                }
                let n = conn
                    .prepare_cached(
                        "UPDATE account SET deactivated_at = NULL, delete_after = NULL
                         WHERE did = ?1",
                    )?
                    .execute([did.as_str()])?;
                if n == 0 {
                    return Err(StoreError::AccountNotFound { did: did.clone() });
                }
                events
                    .iter()
                    .map(|e| event::append(conn, &did, e, &now))
                    .collect()
            })
            .await
    }
}
