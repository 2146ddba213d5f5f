//! Blob uploads: stream to a temporary file while hashing, enforce the size limit, register
//! the upload, and settle the file as the store says (see `pds_store::UploadOutcome`).
//! Promotion to permanent storage on commit happens in the writer.
//!
//! Takedowns: a taken-down blob cannot be uploaded again (as the reference), and its file is
//! moved into quarantine, out of the served location ([`settle_quarantine`]), after the
//! database records the takedown; lifting it moves the file back.

use atp_data::Cid;
use atp_data::blob::BlobRef;
use atp_syntax::Did;
use futures::{Stream, StreamExt};
use pds_store::{BlobStatus, NewUpload, StoreError, UploadOutcome};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::state::{AppState, random_hex};

/// Why an upload failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The body is larger than the limit (or the body limit cut it off).
    #[error("Blob is larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// Reading the body or writing the file failed.
    #[error("blob file I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The account already has this blob, taken down.
    #[error("Blob has been takendown, cannot re-upload")]
    Takendown,
}

/// Uploads a blob for `did` from a stream of chunks; returns its reference.
pub async fn upload<S, B>(
    state: &AppState,
    did: &Did,
    mime_type: String,
    body: S,
) -> Result<BlobRef, BlobError>
where
    S: Stream<Item = std::io::Result<B>> + Unpin,
    B: AsRef<[u8]>,
{
    let blobs = state.writer().blobs();
    blobs.temp_dir()?;
    let temp_key = random_hex();
    let path = blobs.temp_path(&temp_key);
    let received = receive(body, &path, state.config().blob_upload_limit).await;
    let (cid, size) = match received {
        Ok(v) => v,
        Err(e) => {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(e);
        }
    };
    let known = state.store().get_blob(did, &cid).await?;
    if known.is_some_and(|b| b.takedown_ref.is_some()) {
        let _ = tokio::fs::remove_file(&path).await;
        return Err(BlobError::Takendown);
    }
    let upload = NewUpload {
        cid,
        mime_type: mime_type.clone(),
        size,
        temp_key: temp_key.clone(),
    };
    let outcome = state
        .store()
        .register_upload(did, upload, chrono::Utc::now())
        .await?;
    match outcome {
        UploadOutcome::Temporary => {}
        UploadOutcome::ReplacedTemporary { old_temp_key } => {
            if let Some(old) = old_temp_key.filter(|old| *old != temp_key) {
                let _ = tokio::fs::remove_file(blobs.temp_path(&old)).await;
            }
        }
        UploadOutcome::AlreadyPermanent => {
            let _ = tokio::fs::remove_file(&path).await;
        }
        UploadOutcome::Promoted => {
            blobs.promote(did, &cid, &temp_key).await?;
            state.store().finish_blob_promotion(did, &cid).await?;
        }
    }
    Ok(BlobRef {
        cid,
        mime_type,
        size,
        legacy: false,
    })
}

async fn receive<S, B>(
    mut body: S,
    path: &std::path::Path,
    limit: u64,
) -> Result<(Cid, u64), BlobError>
where
    S: Stream<Item = std::io::Result<B>> + Unpin,
    B: AsRef<[u8]>,
{
    let mut file = tokio::fs::File::create(path).await?;
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    while let Some(chunk) = body.next().await {
        // axum's body limit ends the stream with an error once it is exceeded.
        let chunk = chunk.map_err(|_| BlobError::TooLarge { limit })?;
        let chunk = chunk.as_ref();
        size += chunk.len() as u64;
        if size > limit {
            return Err(BlobError::TooLarge { limit });
        }
        hasher.update(chunk);
        file.write_all(chunk).await?;
    }
    file.sync_all().await?;
    let digest: [u8; 32] = hasher.finalize().into();
    Ok((raw_cid(&digest), size))
}

/// The CIDv1 (raw codec, sha2-256) of a blob with this digest.
fn raw_cid(digest: &[u8; 32]) -> Cid {
    let mut bytes = vec![0x01, 0x55, 0x12, 0x20];
    bytes.extend_from_slice(digest);
    atp_data::cid::from_bytes(&bytes)
        .expect("a CIDv1 raw sha2-256 prefix with a 32-byte digest is valid")
}

/// Redoes blob moves a crash interrupted (permanent blobs whose file is still temporary).
pub async fn finish_pending_promotions(state: &AppState) -> Result<usize, BlobError> {
    let pending = state.store().pending_blob_promotions(1000).await?;
    let count = pending.len();
    for file in pending {
        let moved = state
            .writer()
            .blobs()
            .promote(&file.did, &file.cid, &file.temp_key)
            .await;
        match moved {
            Ok(()) => {
                state
                    .store()
                    .finish_blob_promotion(&file.did, &file.cid)
                    .await?
            }
            Err(e) => {
                tracing::warn!(did = %file.did, cid = %file.cid, error = %e, "blob move failed")
            }
        }
    }
    Ok(count)
}

/// Quarantine moves handled per call (the rest waits for the next call).
const QUARANTINE_BATCH: usize = 1000;

/// Moves the files of taken-down blobs into quarantine and those of blobs no longer taken down
/// back (of `did`, or of every account), as the database says, then records each move; returns
/// how many were settled. Each move runs under the account's repository lock and re-reads the
/// blob there, so it never races a commit or another takedown change, and a move a crash
/// interrupted is finished by the next call (at start-up, and by the jobs). A failed move is
/// logged and left for the next call.
pub async fn settle_quarantine(state: &AppState, did: Option<&Did>) -> Result<usize, StoreError> {
    let store = state.store();
    let files = state.writer().blobs();
    let mut settled = 0;
    for pending in store
        .pending_quarantine_moves(did, QUARANTINE_BATCH)
        .await?
    {
        let (did, cid) = (&pending.did, &pending.cid);
        let _guard = store.lock_repo(did).await;
        let Some(blob) = store.get_blob(did, cid).await? else {
            continue;
        };
        if blob.status != BlobStatus::Permanent || blob.temp_key.is_some() {
            continue;
        }
        let quarantine = blob.takedown_ref.is_some();
        match files.set_quarantined(did, cid, quarantine).await {
            Ok(found) => {
                if !found {
                    tracing::warn!(%did, %cid, "a taken-down blob's file is missing");
                }
                store.set_blob_quarantined(did, cid, quarantine).await?;
                settled += 1;
            }
            Err(e) => {
                tracing::warn!(%did, %cid, quarantine, error = %e, "moving a blob file for a takedown failed");
            }
        }
    }
    Ok(settled)
}
