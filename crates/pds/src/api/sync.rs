//! `com.atproto.sync.*`: getBlob and getLatestCommit.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use atp_syntax::Did;
use pds_store::BlobStatus;

use crate::api::error::XrpcError;
use crate::api::extract::{XrpcQuery, parse_param};
use crate::state::AppState;

/// getBlob parameters.
#[derive(Debug, Deserialize)]
pub struct GetBlobParams {
    did: String,
    cid: String,
}

fn blob_not_found() -> XrpcError {
    XrpcError::invalid_request("Blob not found").named("BlobNotFound")
}

/// `com.atproto.sync.getBlob`: the bytes of a permanent blob, sandboxed.
pub async fn get_blob(
    State(state): State<AppState>,
    XrpcQuery(p): XrpcQuery<GetBlobParams>,
) -> Result<Response, XrpcError> {
    let did: Did = parse_param("did", &p.did)?;
    let cid = atp_data::cid::parse(&p.cid)
        .map_err(|e| XrpcError::invalid_request(format!("Invalid cid: {e}")))?;
    let meta = state.store().get_blob(&did, &cid).await?;
    let Some(meta) = meta.filter(|m| m.status == BlobStatus::Permanent && m.takedown_ref.is_none())
    else {
        return Err(blob_not_found());
    };
    let blobs = state.writer().blobs();
    let path = match &meta.temp_key {
        Some(key) => blobs.temp_path(key),
        None => blobs.permanent_path(&did, &cid),
    };
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|_| blob_not_found())?;
    let stream = file_chunks(file);
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    let mime = HeaderValue::from_str(&meta.mime_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, mime);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.size));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

/// A file as a stream of chunks.
fn file_chunks(
    file: tokio::fs::File,
) -> impl futures::Stream<Item = std::io::Result<Vec<u8>>> + Send {
    use tokio::io::AsyncReadExt;
    futures::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(buf), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}

/// getLatestCommit parameters.
#[derive(Debug, Deserialize)]
pub struct GetLatestCommitParams {
    did: String,
}

/// `com.atproto.sync.getLatestCommit`.
pub async fn get_latest_commit(
    State(state): State<AppState>,
    XrpcQuery(p): XrpcQuery<GetLatestCommitParams>,
) -> Result<Json<Value>, XrpcError> {
    let did: Did = parse_param("did", &p.did)?;
    let root = state.store().repo_root(&did).await?.ok_or_else(|| {
        XrpcError::invalid_request(format!("Could not find root for DID: {did}"))
            .named("RepoNotFound")
    })?;
    Ok(Json(
        json!({"cid": root.commit.to_string(), "rev": root.rev.to_string()}),
    ))
}
