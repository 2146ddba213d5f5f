//! Streaming CAR export of a stored repository (`com.atproto.sync.getRepo`).
//!
//! [`export_car`] writes the commit block first (the CAR's single root), then the MST nodes and
//! records in walk order (each node, then its left subtree, then each record and the subtree after
//! it: a depth-first preorder with records in key order; see [`crate::traverse`]). Blocks are read
//! in batches and written as they come, so memory does not grow with the repository, and the
//! tree is checked on the way: a store holding a broken repository fails the export instead of
//! producing a broken CAR. A record block shared by several keys is written once when the
//! repeats are close together (a bounded window), and again otherwise: CAR readers accept
//! repeated blocks.
//!
//! [`export_car_since`] writes the partial export `getRepo?since=rev`: the commit, then every
//! block stored with a newer revision ([`BlockStore::blocks_since_page`]), page by page.
//!
//! Both write to any [`std::io::Write`]; pass a buffered writer (a `BufWriter<File>`, a `Vec`, or
//! an adapter that forwards chunks to an async body). For full control over pacing, drive a
//! [`Traversal`] and a [`CarWriter`] directly.

use std::io::Write;

use atp_data::Cid;
use atp_data::car::{CarError, CarWriter};
use atp_syntax::Tid;

use crate::blockstore::BlockStore;
use crate::traverse::{Traversal, Visit};
use crate::verify::{VerifyError, load_commit};

/// Blocks per [`BlockStore::blocks_since_page`] call.
const SINCE_PAGE: usize = 1000;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The repository in the store is incomplete or invalid (or the store failed).
    #[error("cannot export the repository: {0}")]
    Repo(#[from] VerifyError),
    /// Writing the CAR failed.
    #[error("writing the CAR failed: {0}")]
    Write(#[source] CarError),
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// Blocks written (the commit included).
    pub blocks: u64,
    /// Bytes written (the whole CAR).
    pub bytes: u64,
    /// MST nodes written.
    pub mst_nodes: u64,
    /// Records in the tree (a record block written once for several keys counts each time).
    pub records: u64,
}

/// Writes the full repository whose commit block is `commit` as a CAR to `out` (see the module
/// docs), returning the writer and what was written.
pub async fn export_car<S: BlockStore, W: Write>(
    store: &S,
    commit: &Cid,
    out: W,
) -> Result<(W, ExportStats), ExportError> {
    let (signed, commit_bytes) = load_commit(store, commit).await?;
    let mut car = CarWriter::new(out, &[*commit]).map_err(ExportError::Write)?;
    car.write_block(commit, &commit_bytes)
        .map_err(ExportError::Write)?;
    let mut stats = ExportStats {
        blocks: 1,
        ..ExportStats::default()
    };
    let mut walk = Traversal::new(store, *signed.data());
    while let Some(visit) = walk.next().await? {
        let (cid, bytes) = match visit {
            Visit::Node { cid, bytes, .. } => {
                stats.mst_nodes += 1;
                (cid, bytes)
            }
            Visit::Record { cid, bytes, .. } => {
                stats.records += 1;
                match bytes {
                    Some(bytes) => (cid, bytes),
                    None => continue,
                }
            }
        };
        car.write_block(&cid, &bytes).map_err(ExportError::Write)?;
        stats.blocks += 1;
    }
    stats.bytes = car.bytes_written();
    let out = car.finish().map_err(ExportError::Write)?;
    Ok((out, stats))
}

/// Writes the partial export of the repository at `commit` since revision `since`: the commit
/// block first (the CAR's root), then every other block the store holds with a revision newer
/// than `since`, in the store's page order. Nothing is checked beyond the commit block.
pub async fn export_car_since<S: BlockStore, W: Write>(
    store: &S,
    commit: &Cid,
    since: &Tid,
    out: W,
) -> Result<(W, ExportStats), ExportError> {
    let (_, commit_bytes) = load_commit(store, commit).await?;
    let mut car = CarWriter::new(out, &[*commit]).map_err(ExportError::Write)?;
    car.write_block(commit, &commit_bytes)
        .map_err(ExportError::Write)?;
    let mut stats = ExportStats {
        blocks: 1,
        ..ExportStats::default()
    };
    let mut after: Option<Cid> = None;
    loop {
        let page = store
            .blocks_since_page(since, after.as_ref(), SINCE_PAGE)
            .await
            .map_err(VerifyError::from)?;
        let full = page.len() >= SINCE_PAGE;
        for (cid, bytes) in &page {
            if cid != commit {
                car.write_block(cid, bytes).map_err(ExportError::Write)?;
                stats.blocks += 1;
            }
        }
        match page.last() {
            Some((last, _)) if full => after = Some(*last),
            _ => break,
        }
    }
    stats.bytes = car.bytes_written();
    let out = car.finish().map_err(ExportError::Write)?;
    Ok((out, stats))
}
