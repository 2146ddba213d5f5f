//! The block storage seam: where repository blocks (records, MST nodes, commits) live.
//!
//! [`BlockStore`] is the one trait between this crate and storage. Its methods return
//! `impl Future + Send`, so a SQLite-backed store (in `pds-store`) and [`MemoryBlockStore`] fit the
//! same shape. Every block is stored with the revision ([`Tid`]) of the commit that introduced it,
//! which is what `com.atproto.sync.getRepo?since=` needs.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::RwLock;

use atp_data::Cid;
use atp_syntax::Tid;

/// Blocks by CID, in CID byte order (a stable order for tests and CAR slices).
pub type BlockMap = BTreeMap<Cid, Vec<u8>>;

/// The answer to a batch read: the blocks that were found, and the CIDs that were not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FoundBlocks {
    /// Found blocks.
    pub blocks: BlockMap,
    /// Requested CIDs the store does not hold, in request order, without duplicates.
    pub missing: Vec<Cid>,
}

/// Why a block store operation failed. A block that is simply absent is not an error: reads return
/// `None` or list it in [`FoundBlocks::missing`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A block's bytes do not hash to its CID.
    #[error("block {cid} does not match its content hash")]
    HashMismatch {
        /// The claimed CID.
        cid: Cid,
    },
    /// The storage backend failed (I/O, database, ...).
    #[error("block storage failed: {message}")]
    Backend {
        /// The backend's description of the failure.
        message: String,
    },
}

/// Content-addressed block storage for one repository.
///
/// Implementations must be safe to share between tasks (`&self` methods). Writes are idempotent:
/// putting a block that exists again is allowed and records the newer revision.
pub trait BlockStore: Send + Sync {
    /// One block's bytes; absent → `Ok(None)`.
    fn get_block(
        &self,
        cid: &Cid,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;

    /// Whether the block is present.
    fn has_block(&self, cid: &Cid) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Many blocks in one round trip. Absent blocks are listed in [`FoundBlocks::missing`].
    fn get_blocks(
        &self,
        cids: &[Cid],
    ) -> impl Future<Output = Result<FoundBlocks, StoreError>> + Send;

    /// Stores blocks, each tagged with `rev`, the revision of the commit that introduced them.
    fn put_blocks(
        &self,
        blocks: &BlockMap,
        rev: &Tid,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes blocks; CIDs that are not present are ignored.
    fn delete_blocks(&self, cids: &[Cid]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One page of the blocks stored with a revision strictly after `since` (for
    /// `getRepo?since=`): at most `limit` blocks, in an order of the store's choosing that is
    /// stable between calls, starting after the block `after` (the last CID of the previous page;
    /// `None` for the first page). Fewer than `limit` blocks (possibly none) means the end.
    ///
    /// The default implementation reports that the store cannot list blocks by revision.
    fn blocks_since_page(
        &self,
        since: &Tid,
        after: Option<&Cid>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(Cid, Vec<u8>)>, StoreError>> + Send {
        let _ = (since, after, limit);
        async {
            Err(StoreError::Backend {
                message: "this block store cannot list blocks by revision".to_owned(),
            })
        }
    }
}

/// An in-memory [`BlockStore`], keeping the revision of every block.
///
/// Used by tests, by sync verification of CAR slices and as a scratch store.
#[derive(Debug, Default)]
pub struct MemoryBlockStore {
    blocks: RwLock<Entries>,
}

/// Block bytes and the revision that stored them, by CID.
type Entries = HashMap<Cid, (Vec<u8>, Option<Tid>)>;

impl MemoryBlockStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding `blocks`, without revisions (they are never returned by
    /// [`blocks_since`](Self::blocks_since) with a `since`). Blocks are not hash-checked: use this
    /// for blocks that were already verified (e.g. read by `atp_data::car::CarReader`).
    pub fn from_blocks(blocks: BlockMap) -> Self {
        let map = blocks
            .into_iter()
            .map(|(cid, bytes)| (cid, (bytes, None)))
            .collect();
        MemoryBlockStore {
            blocks: RwLock::new(map),
        }
    }

    /// Number of blocks held.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether the store holds no blocks.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// The blocks introduced by revisions strictly after `since` (all blocks when `since` is
    /// `None`), for `getRepo?since=`.
    pub fn blocks_since(&self, since: Option<&Tid>) -> BlockMap {
        self.read()
            .iter()
            .filter(|(_, (_, rev))| match (since, rev) {
                (None, _) => true,
                (Some(since), Some(rev)) => rev > since,
                (Some(_), None) => false,
            })
            .map(|(cid, (bytes, _))| (*cid, bytes.clone()))
            .collect()
    }

    /// The revision a block was stored with; absent block or no revision → `None`.
    pub fn rev_of(&self, cid: &Cid) -> Option<Tid> {
        self.read().get(cid).and_then(|(_, rev)| rev.clone())
    }

    /// Every block, in CID order.
    pub fn all_blocks(&self) -> BlockMap {
        self.blocks_since(None)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Entries> {
        // A poisoned lock only means another thread panicked mid-write of a plain map insert;
        // the map itself is still consistent.
        self.blocks.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Entries> {
        self.blocks.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl BlockStore for MemoryBlockStore {
    async fn get_block(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read().get(cid).map(|(bytes, _)| bytes.clone()))
    }

    async fn has_block(&self, cid: &Cid) -> Result<bool, StoreError> {
        Ok(self.read().contains_key(cid))
    }

    async fn get_blocks(&self, cids: &[Cid]) -> Result<FoundBlocks, StoreError> {
        let map = self.read();
        let mut found = FoundBlocks::default();
        for cid in cids {
            match map.get(cid) {
                Some((bytes, _)) => {
                    found.blocks.insert(*cid, bytes.clone());
                }
                None if !found.missing.contains(cid) => found.missing.push(*cid),
                None => {}
            }
        }
        Ok(found)
    }

    async fn put_blocks(&self, blocks: &BlockMap, rev: &Tid) -> Result<(), StoreError> {
        if let Some(cid) = blocks
            .iter()
            .find(|(cid, bytes)| !atp_data::cid::matches(cid, bytes))
        {
            return Err(StoreError::HashMismatch { cid: *cid.0 });
        }
        let mut map = self.write();
        for (cid, bytes) in blocks {
            map.insert(*cid, (bytes.clone(), Some(rev.clone())));
        }
        Ok(())
    }

    async fn delete_blocks(&self, cids: &[Cid]) -> Result<(), StoreError> {
        let mut map = self.write();
        for cid in cids {
            map.remove(cid);
        }
        Ok(())
    }

    /// Pages in CID order; each page scans the whole map (this store is for tests and scratch use).
    async fn blocks_since_page(
        &self,
        since: &Tid,
        after: Option<&Cid>,
        limit: usize,
    ) -> Result<Vec<(Cid, Vec<u8>)>, StoreError> {
        let map = self.read();
        let mut page: Vec<(&Cid, &Vec<u8>)> = map
            .iter()
            .filter(|(cid, (_, rev))| {
                rev.as_ref().is_some_and(|rev| rev > since) && after.is_none_or(|a| *cid > a)
            })
            .map(|(cid, (bytes, _))| (cid, bytes))
            .collect();
        if page.len() > limit {
            page.select_nth_unstable_by_key(limit, |(cid, _)| **cid);
            page.truncate(limit);
        }
        page.sort_unstable_by_key(|(cid, _)| **cid);
        Ok(page
            .into_iter()
            .map(|(cid, bytes)| (*cid, bytes.clone()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atp_data::cid::cid_for_cbor;

    fn tid(s: &str) -> Tid {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn put_get_since_delete() {
        let store = MemoryBlockStore::new();
        let a = (cid_for_cbor(b"\x01"), b"\x01".to_vec());
        let b = (cid_for_cbor(b"\x02"), b"\x02".to_vec());
        store
            .put_blocks(&BlockMap::from([a.clone()]), &tid("3jzfcijpj2z2a"))
            .await
            .unwrap();
        store
            .put_blocks(&BlockMap::from([b.clone()]), &tid("3jzfcijpj2z2b"))
            .await
            .unwrap();
        assert_eq!(store.get_block(&a.0).await.unwrap(), Some(a.1.clone()));
        assert!(store.has_block(&b.0).await.unwrap());
        let since = store.blocks_since(Some(&tid("3jzfcijpj2z2a")));
        assert_eq!(since.keys().collect::<Vec<_>>(), vec![&b.0]);
        assert_eq!(store.blocks_since(None).len(), 2);

        let missing = cid_for_cbor(b"\x03");
        let found = store.get_blocks(&[a.0, missing, missing]).await.unwrap();
        assert_eq!(found.blocks.len(), 1);
        assert_eq!(found.missing, vec![missing]);

        store.delete_blocks(&[a.0]).await.unwrap();
        assert_eq!(store.get_block(&a.0).await.unwrap(), None);
        assert_eq!(store.len(), 1);
    }

    #[tokio::test]
    async fn refuses_mismatched_hash() {
        let store = MemoryBlockStore::new();
        let bad = BlockMap::from([(cid_for_cbor(b"\x01"), b"\x02".to_vec())]);
        let err = store
            .put_blocks(&bad, &tid("3jzfcijpj2z2a"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::HashMismatch { .. }));
        assert!(store.is_empty());
    }
}
