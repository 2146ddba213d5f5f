//! [`SqliteBlockStore`]: one account's repository blocks, as an `atp_repo::BlockStore`.
//!
//! Reads go through the reader pool (a batch read is one blocking task and one read
//! transaction). In normal operation blocks are written only by the commit transaction
//! ([`Store::commit_repo`]); `put_blocks` / `delete_blocks` write directly (through the writer
//! thread), which is what staging a repository import (`atp_repo::stage_car`) needs. Staged
//! blocks that end up unused stay until the account's repository is replaced or deleted.

use atp_data::Cid;
use atp_repo::{BlockMap, BlockStore, FoundBlocks};
use atp_syntax::{Did, Tid};
use rusqlite::{OptionalExtension, params};

use crate::Store;
use crate::db::cid_at;
use crate::error::StoreError;
use crate::repo::put_blocks;

/// Largest batch of blocks read on the calling thread ([`crate::db::Db::read_quick`]).
const QUICK_FETCH: usize = 32;

/// One account's blocks in the store. Cheap to clone.
#[derive(Clone)]
pub struct SqliteBlockStore {
    store: Store,
    did: Did,
}

impl std::fmt::Debug for SqliteBlockStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBlockStore")
            .field("did", &self.did)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// The block store of `did`'s repository.
    pub fn block_store(&self, did: &Did) -> SqliteBlockStore {
        SqliteBlockStore {
            store: self.clone(),
            did: did.clone(),
        }
    }
}

impl SqliteBlockStore {
    /// The account.
    pub fn did(&self) -> &Did {
        &self.did
    }

    /// The revision a block was stored with (`None`: absent).
    pub async fn rev_of(&self, cid: &Cid) -> Result<Option<Tid>, StoreError> {
        let (did, cid) = (self.did.clone(), cid.to_bytes());
        self.store
            .db()
            .read_quick(move |conn| {
                Ok(conn
                    .prepare_cached("SELECT rev FROM repo_block WHERE did = ?1 AND cid = ?2")?
                    .query_row(params![did.as_str(), cid], |r| crate::db::parsed_at(r, 0))
                    .optional()?)
            })
            .await
    }

    /// Number of blocks stored for the account.
    pub async fn count(&self) -> Result<u64, StoreError> {
        let did = self.did.clone();
        self.store
            .db()
            .read(move |conn| {
                let n: i64 = conn
                    .prepare_cached("SELECT COUNT(*) FROM repo_block WHERE did = ?1")?
                    .query_row([did.as_str()], |r| r.get(0))?;
                Ok(u64::try_from(n).unwrap_or(0))
            })
            .await
    }

    async fn fetch(&self, cids: Vec<Cid>) -> Result<FoundBlocks, StoreError> {
        let did = self.did.clone();
        let small = cids.len() <= QUICK_FETCH;
        let work = move |conn: &rusqlite::Connection| {
            fetch_blocks(
                conn,
                "SELECT bytes FROM repo_block WHERE did = ?1 AND cid = ?2",
                &did,
                cids,
            )
        };
        // A commit's tree walk asks for a few nodes per layer: point lookups. Exports and
        // verification ask for whole layers: those go to a blocking task.
        if small {
            self.store.db().read_quick(work).await
        } else {
            self.store.db().read(work).await
        }
    }
}

impl BlockStore for SqliteBlockStore {
    async fn get_block(&self, cid: &Cid) -> Result<Option<Vec<u8>>, atp_repo::StoreError> {
        let mut found = self.fetch(vec![*cid]).await?;
        Ok(found.blocks.remove(cid))
    }

    async fn has_block(&self, cid: &Cid) -> Result<bool, atp_repo::StoreError> {
        let (did, cid) = (self.did.clone(), cid.to_bytes());
        Ok(self
            .store
            .db()
            .read_quick(move |conn| {
                crate::db::exists(
                    conn,
                    "SELECT 1 FROM repo_block WHERE did = ?1 AND cid = ?2",
                    params![did.as_str(), cid],
                )
            })
            .await?)
    }

    async fn get_blocks(&self, cids: &[Cid]) -> Result<FoundBlocks, atp_repo::StoreError> {
        Ok(self.fetch(cids.to_vec()).await?)
    }

    /// Checks every block's hash first (nothing is written if one does not match), then writes
    /// them all in one transaction.
    async fn put_blocks(&self, blocks: &BlockMap, rev: &Tid) -> Result<(), atp_repo::StoreError> {
        check_hashes(blocks)?;
        let (did, blocks, rev) = (self.did.clone(), blocks.clone(), rev.clone());
        Ok(self
            .store
            .db()
            .write(move |conn| put_blocks(conn, &did, &blocks, &rev))
            .await?)
    }

    async fn delete_blocks(&self, cids: &[Cid]) -> Result<(), atp_repo::StoreError> {
        let (did, cids) = (self.did.clone(), cids.to_vec());
        Ok(self
            .store
            .db()
            .write(move |conn| {
                delete_blocks(
                    conn,
                    "DELETE FROM repo_block WHERE did = ?1 AND cid = ?2",
                    &did,
                    &cids,
                )
            })
            .await?)
    }

    /// Pages in CID byte order (the primary key's order, so paging is one index range scan).
    async fn blocks_since_page(
        &self,
        since: &Tid,
        after: Option<&Cid>,
        limit: usize,
    ) -> Result<Vec<(Cid, Vec<u8>)>, atp_repo::StoreError> {
        let did = self.did.clone();
        let since = since.as_str().to_owned();
        let after = after.map(|c| c.to_bytes()).unwrap_or_default();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Ok(self
            .store
            .db()
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT cid, bytes FROM repo_block
                     WHERE did = ?1 AND cid > ?2 AND rev > ?3 ORDER BY cid LIMIT ?4",
                )?;
                let rows = stmt.query_map(params![did.as_str(), after, since, limit], |r| {
                    Ok((cid_at(r, 0)?, r.get(1)?))
                })?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await?)
    }
}

/// Fails with the first block whose bytes do not hash to its CID.
pub(crate) fn check_hashes(blocks: &BlockMap) -> Result<(), atp_repo::StoreError> {
    match blocks
        .iter()
        .find(|(cid, bytes)| !atp_data::cid::matches(cid, bytes))
    {
        Some((cid, _)) => Err(atp_repo::StoreError::HashMismatch { cid: *cid }),
        None => Ok(()),
    }
}

/// Deletes each CID with `sql`, a statement taking the DID and the binary CID.
pub(crate) fn delete_blocks(
    conn: &rusqlite::Connection,
    sql: &str,
    did: &Did,
    cids: &[Cid],
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    for cid in cids {
        stmt.execute(params![did.as_str(), cid.to_bytes()])?;
    }
    Ok(())
}

/// Looks up each CID (once, duplicates skipped) with `sql`, a point query taking the DID and
/// the binary CID and returning the block's bytes; what is not found is listed as missing.
pub(crate) fn fetch_blocks(
    conn: &rusqlite::Connection,
    sql: &str,
    did: &Did,
    cids: Vec<Cid>,
) -> Result<FoundBlocks, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut found = FoundBlocks::default();
    for cid in cids {
        if found.blocks.contains_key(&cid) || found.missing.contains(&cid) {
            continue;
        }
        let bytes: Option<Vec<u8>> = stmt
            .query_row(params![did.as_str(), cid.to_bytes()], |r| r.get(0))
            .optional()?;
        match bytes {
            Some(bytes) => {
                found.blocks.insert(cid, bytes);
            }
            None => found.missing.push(cid),
        }
    }
    Ok(found)
}
