//! Blob uploads: stream to a temporary file while hashing, enforce the size limit, register
//! the upload, and settle the file as the store says (see `pds_store::UploadOutcome`).
//! Promotion to permanent storage on commit happens in the writer.

use atp_data::Cid;
use atp_data::blob::BlobRef;
use atp_syntax::Did;
use futures::{Stream, StreamExt};
use pds_store::{NewUpload, StoreError, UploadOutcome};
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
