//! Streaming import: reading a repository CAR of any size into a [`BlockStore`], in batches.
//!
//! Blocks may come in any order, so import is two steps: [`stage_car`] reads the stream (every
//! block's hash is checked by [`CarReader`]) and puts the blocks into the store in bounded batches;
//! then [`crate::verify::verify_repo`] checks the tree from the store, with memory bounded by the
//! tree's depth. A server stages into its own (SQLite) store; the CLI and tests use
//! [`crate::MemoryBlockStore`] (see [`crate::verify_car`]).

use std::io::Read;

use atp_data::Cid;
use atp_data::car::CarReader;
use atp_syntax::Tid;

use crate::blockstore::{BlockMap, BlockStore};
use crate::verify::VerifyError;

/// Blocks per [`BlockStore::put_blocks`] call while staging.
const BATCH_BLOCKS: usize = 4096;
/// Block bytes per [`BlockStore::put_blocks`] call while staging.
const BATCH_BYTES: usize = 4 * 1024 * 1024;

/// What [`stage_car`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedCar {
    /// The roots named in the CAR header.
    pub roots: Vec<Cid>,
    /// Blocks read (a repeated block counts each time).
    pub blocks: u64,
    /// Bytes of the CAR stream.
    pub bytes: u64,
}

impl StagedCar {
    /// The single root a repository CAR must have (the commit).
    pub fn root(&self) -> Result<Cid, VerifyError> {
        match self.roots.as_slice() {
            [root] => Ok(*root),
            roots => Err(VerifyError::BadRoots { count: roots.len() }),
        }
    }
}

/// Reads a CAR stream into `store`, tagging every block with `rev`, in batches of bounded size.
///
/// Only the framing and each block's hash are checked here ([`VerifyError::HashMismatch`] names
/// the block); the repository itself is checked by [`crate::verify::verify_repo`] afterwards. On
/// error, the blocks of earlier batches stay in the store: stage into a scratch store (or
/// transaction) and discard it. `rev` is the caller's choice: for a scratch store any TID; for an
/// account's store, the revision the import will be recorded under. The reader is read
/// synchronously: pass a buffered or in-memory reader, or call this from a blocking task.
pub async fn stage_car<R: Read, S: BlockStore>(
    reader: R,
    store: &S,
    rev: &Tid,
) -> Result<StagedCar, VerifyError> {
    let mut car = CarReader::new(reader)?;
    let mut staged = StagedCar {
        roots: car.roots().to_vec(),
        blocks: 0,
        bytes: 0,
    };
    let mut batch = BlockMap::new();
    let mut batch_bytes = 0;
    while let Some((cid, data)) = car.next_block()? {
        staged.blocks += 1;
        batch_bytes += data.len();
        batch.insert(cid, data);
        if batch.len() >= BATCH_BLOCKS || batch_bytes >= BATCH_BYTES {
            store.put_blocks(&batch, rev).await?;
            batch.clear();
            batch_bytes = 0;
        }
    }
    if !batch.is_empty() {
        store.put_blocks(&batch, rev).await?;
    }
    staged.bytes = car.bytes_read();
    Ok(staged)
}
