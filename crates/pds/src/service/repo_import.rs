//! `com.atproto.repo.importRepo`: a repository CAR streamed into a deactivated account, with
//! memory bounded by the batch sizes and the tree's depth, never by the repository's size.
//!
//! Pipeline (see `pds_store::ImportStaging` for the storage side):
//! 1. the request body is pumped, chunk by chunk and counted against the size limit, into a
//!    bounded channel; a blocking task reads the CAR from it (`atp_data::car::CarReader` checks
//!    every block's hash) and hands batches of blocks back to be staged;
//! 2. the commit is read from the staging area: it must be the account's;
//! 3. the tree is walked from the staging area (`atp_repo::Traversal` checks every MST node: hash,
//!    canonical encoding, key order, heights), each record is decoded strictly and its blob
//!    references collected, and records and reached nodes are staged in batches;
//! 4. `Store::finish_import` swaps the repository in one transaction; blob files that became
//!    permanent move, and files of blobs no longer referenced are deleted.
//!
//! Anything refused leaves the account's repository as it was (the staging rows are cleared).
//! The commit signature is not checked (the old host's key may already have been rotated out of
//! the DID document, and the reference does not check it either): activation re-signs the head
//! with this server's key. No event is emitted: activation announces the repository with `#sync`.

use std::io::Read;

use atp_data::Cid;
use atp_data::car::CarReader;
use atp_repo::{BlockMap, BlockStore, Traversal, VerifyError, Visit};
use atp_syntax::{Did, Nsid, RecordKey};
use axum::http::StatusCode;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use pds_store::{ImportOutcome, ImportStaging, ImportedHead, StagedRecord};
use tokio::sync::mpsc;

use crate::api::error::XrpcError;
use crate::state::AppState;

/// Blocks per staging batch.
const BATCH_BLOCKS: usize = 2048;
/// Block bytes per staging batch.
const BATCH_BYTES: usize = 2 * 1024 * 1024;
/// Records (or MST nodes) per staging write during the walk.
const WALK_BATCH: usize = 1000;
/// Body chunks buffered between the request and the CAR reader.
const CHUNK_QUEUE: usize = 16;

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    /// The imported commit.
    pub commit: Cid,
    /// Bytes of the CAR.
    pub bytes: u64,
    /// What the store did.
    pub outcome: ImportOutcome,
}

/// 413 for a body over the limit (the reference's `PayloadTooLarge`).
pub fn too_large(limit: u64) -> XrpcError {
    XrpcError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "PayloadTooLarge",
        format!("request entity too large: the repository import limit is {limit} bytes"),
    )
}

fn bad_repo(e: impl std::fmt::Display) -> XrpcError {
    XrpcError::invalid_request(format!("Invalid repository: {e}"))
}

/// Refuses an import into an account that is active or taken down.
async fn check_account(state: &AppState, did: &Did) -> Result<(), XrpcError> {
    let account = state
        .store()
        .get_account(did)
        .await?
        .ok_or_else(|| XrpcError::invalid_request(format!("Could not find repo: {did}")))?;
    if account.takedown_ref.is_some() {
        return Err(XrpcError::account_takedown());
    }
    if account.deactivated_at.is_none() {
        return Err(XrpcError::invalid_request(
            "Account is active: a repository can only be imported into a deactivated account \
             (create the account with an existing DID, import, then activate it)",
        ));
    }
    Ok(())
}

/// Imports the CAR streamed in `body` (at most `limit` bytes) into `did`'s repository.
pub async fn import_repo<S>(
    state: &AppState,
    did: &Did,
    body: S,
    limit: u64,
) -> Result<ImportSummary, XrpcError>
where
    S: Stream<Item = std::io::Result<Bytes>> + Unpin + Send,
{
    check_account(state, did).await?;
    let _guard = state.store().lock_repo(did).await;
    // Activation takes the same lock: re-check under it.
    check_account(state, did).await?;
    let staging = state.store().import_staging(did);
    staging.clear().await?;
    let result = stage_and_swap(state, &staging, body, limit).await;
    if result.is_err()
        && let Err(e) = staging.clear().await
    {
        tracing::warn!(%did, error = %e, "clearing a failed import's staging rows failed");
    }
    let summary = result?;
    settle_blob_files(state, did, &summary.outcome).await;
    Ok(summary)
}

async fn stage_and_swap<S>(
    state: &AppState,
    staging: &ImportStaging,
    body: S,
    limit: u64,
) -> Result<ImportSummary, XrpcError>
where
    S: Stream<Item = std::io::Result<Bytes>> + Unpin + Send,
{
    let did = staging.did().clone();
    let (root, bytes) = stage_body(staging, body, limit).await?;
    let commit = atp_repo::verify::read_commit(staging, &root)
        .await
        .map_err(bad_repo)?;
    if commit.did() != &did {
        return Err(XrpcError::invalid_request(format!(
            "The repository belongs to {}, not to {did}: a repository can only be imported \
             into its own account",
            commit.did()
        )));
    }
    walk_and_stage(staging, *commit.data()).await?;
    let rev = match commit.rev() {
        Some(rev) => rev.clone(),
        None => state.writer().next_tid(),
    };
    let head = ImportedHead {
        commit: root,
        rev,
        data: *commit.data(),
    };
    let outcome = state
        .store()
        .finish_import(&did, head, chrono::Utc::now())
        .await?;
    Ok(ImportSummary {
        commit: root,
        bytes,
        outcome,
    })
}

/// Moves promoted blob files and deletes unreferenced ones (failures are logged; promotions
/// are redone at start-up).
async fn settle_blob_files(state: &AppState, did: &Did, outcome: &ImportOutcome) {
    let blobs = state.writer().blobs();
    for promoted in &outcome.promoted_blobs {
        if let Some(key) = &promoted.temp_key
            && let Err(e) = blobs.promote(did, &promoted.cid, key).await
        {
            tracing::error!(%did, cid = %promoted.cid, error = %e, "moving an imported blob failed");
            continue;
        }
        if let Err(e) = state
            .store()
            .finish_blob_promotion(did, &promoted.cid)
            .await
        {
            tracing::error!(%did, cid = %promoted.cid, error = %e, "confirming a blob move failed");
        }
    }
    for cid in &outcome.unreferenced_blobs {
        if let Err(e) = blobs.delete(did, cid).await {
            tracing::warn!(%did, %cid, error = %e, "deleting an unreferenced blob file failed");
        }
    }
}

/// A `Read` over body chunks received from a channel (used on a blocking thread).
struct ChannelReader {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

/// Why the body pump stopped early.
#[derive(Debug)]
enum PumpEnd {
    /// The body exceeded the limit.
    TooLarge,
    /// Reading the body failed.
    Body(String),
}

/// Reads the CAR on a blocking thread, sending batches of blocks; returns the roots and bytes.
fn parse_car(
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
    batches: mpsc::Sender<BlockMap>,
) -> Result<(Vec<Cid>, u64), VerifyError> {
    let reader = ChannelReader {
        rx,
        current: Bytes::new(),
    };
    let mut car = CarReader::new(reader)?;
    let roots = car.roots().to_vec();
    let mut batch = BlockMap::new();
    let mut batch_bytes = 0;
    while let Some((cid, data)) = car.next_block()? {
        batch_bytes += data.len();
        batch.insert(cid, data);
        if batch.len() >= BATCH_BLOCKS || batch_bytes >= BATCH_BYTES {
            if batches.blocking_send(std::mem::take(&mut batch)).is_err() {
                return Err(VerifyError::Io(std::io::Error::other("staging stopped")));
            }
            batch_bytes = 0;
        }
    }
    if !batch.is_empty() && batches.blocking_send(batch).is_err() {
        return Err(VerifyError::Io(std::io::Error::other("staging stopped")));
    }
    Ok((roots, car.bytes_read()))
}

/// Streams the body into the staging area; returns the CAR's single root and its size.
async fn stage_body<S>(
    staging: &ImportStaging,
    mut body: S,
    limit: u64,
) -> Result<(Cid, u64), XrpcError>
where
    S: Stream<Item = std::io::Result<Bytes>> + Unpin + Send,
{
    let (chunk_tx, chunk_rx) = mpsc::channel::<std::io::Result<Bytes>>(CHUNK_QUEUE);
    let (batch_tx, mut batch_rx) = mpsc::channel::<BlockMap>(2);
    let parser = tokio::task::spawn_blocking(move || parse_car(chunk_rx, batch_tx));
    let pump = async move {
        let mut received: u64 = 0;
        while let Some(chunk) = body.next().await {
            let (item, end) = match chunk {
                Ok(chunk) => {
                    received += chunk.len() as u64;
                    if received > limit {
                        let e = std::io::Error::other("over the import size limit");
                        (Err(e), Some(PumpEnd::TooLarge))
                    } else {
                        (Ok(chunk), None)
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    (Err(e), Some(PumpEnd::Body(message)))
                }
            };
            // A closed channel means the reader stopped (its error is reported instead).
            let sent = chunk_tx.send(item).await.is_ok();
            if end.is_some() || !sent {
                return end;
            }
        }
        None
    };
    let stage = async {
        while let Some(batch) = batch_rx.recv().await {
            staging
                .put_blocks(&batch, &atp_syntax::Tid::from_u64(0))
                .await?;
        }
        Ok::<(), atp_repo::StoreError>(())
    };
    let (pump_end, staged) = tokio::join!(pump, stage);
    let parsed = parser
        .await
        .map_err(|e| XrpcError::internal(format!("the CAR reader task failed: {e}")))?;
    match pump_end {
        Some(PumpEnd::TooLarge) => return Err(too_large(limit)),
        Some(PumpEnd::Body(message)) => {
            return Err(XrpcError::invalid_request(format!(
                "Reading the request body failed: {message}"
            )));
        }
        None => {}
    }
    staged.map_err(|e| match e {
        atp_repo::StoreError::HashMismatch { cid } => bad_repo(VerifyError::HashMismatch { cid }),
        other => XrpcError::internal(other),
    })?;
    let (roots, bytes) = parsed.map_err(bad_repo)?;
    match roots.as_slice() {
        [root] => Ok((*root, bytes)),
        _ => Err(XrpcError::invalid_request("expected one root")),
    }
}

/// Walks the staged tree from `data`, staging records (with their blob references) and marking
/// the MST nodes reached.
async fn walk_and_stage(staging: &ImportStaging, data: Cid) -> Result<(), XrpcError> {
    let mut walk = Traversal::new(staging, data).skip_repeated_records(false);
    let mut nodes = Vec::new();
    let mut records = Vec::new();
    while let Some(visit) = walk.next().await.map_err(bad_repo)? {
        match visit {
            Visit::Node { cid, .. } => nodes.push(cid),
            Visit::Record { key, cid, bytes } => {
                let bytes = bytes.ok_or_else(|| bad_repo(format!("record {key} was skipped")))?;
                records.push(staged_record(&key, cid, &bytes)?);
            }
        }
        if nodes.len() >= WALK_BATCH {
            staging.mark_nodes(std::mem::take(&mut nodes)).await?;
        }
        if records.len() >= WALK_BATCH {
            staging.stage_records(std::mem::take(&mut records)).await?;
        }
    }
    staging.mark_nodes(nodes).await?;
    staging.stage_records(records).await?;
    Ok(())
}

/// Checks one record (a DAG-CBOR map under a valid `collection/rkey` path) and collects its blob
/// references.
fn staged_record(key: &str, cid: Cid, bytes: &[u8]) -> Result<StagedRecord, XrpcError> {
    let bad = |reason: String| bad_repo(format!("record {key} ({cid}): {reason}"));
    let (collection, rkey) = key
        .split_once('/')
        .ok_or_else(|| bad("the path is not collection/rkey".to_owned()))?;
    let collection: Nsid = collection
        .parse()
        .map_err(|e| bad(format!("bad collection: {e}")))?;
    let rkey: RecordKey = rkey
        .parse()
        .map_err(|e| bad(format!("bad record key: {e}")))?;
    if cid.codec() != atp_data::cid::DAG_CBOR {
        return Err(bad("the record CID is not a DAG-CBOR CID".to_owned()));
    }
    let value = atp_data::cbor::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    if value.as_map().is_none() {
        return Err(bad("a record must be a map".to_owned()));
    }
    Ok(StagedRecord {
        collection,
        rkey,
        cid,
        blobs: atp_data::blob::collect(&value),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_must_be_maps_under_valid_paths() {
        let map = atp_data::cbor::to_vec(&atp_data::Value::Map(Default::default()));
        let cid = atp_data::cid::cid_for_cbor(&map);
        assert!(staged_record("app.bsky.feed.post/3jzfcijpj2z2a", cid, &map).is_ok());
        assert!(staged_record("nocollection", cid, &map).is_err());
        assert!(staged_record("app.bsky.feed.post/bad key", cid, &map).is_err());
        let int = atp_data::cbor::to_vec(&atp_data::Value::Integer(1));
        let int_cid = atp_data::cid::cid_for_cbor(&int);
        assert!(staged_record("app.bsky.feed.post/a", int_cid, &int).is_err());
        let raw = atp_data::cid::cid_for_raw(&map);
        assert!(staged_record("app.bsky.feed.post/a", raw, &map).is_err());
    }
}
