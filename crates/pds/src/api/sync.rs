//! `com.atproto.sync.*`: the public repository sync endpoints (no auth).
//!
//! Every endpoint but getRepoStatus and listRepos first checks the account as the reference
//! PDS's `assertRepoAvailability` does: unknown → `RepoNotFound`, taken down → `RepoTakendown`,
//! deactivated → `RepoDeactivated`, except for the owner (a still-valid access token) and the
//! administrator (basic auth), who may read it whatever its status ([`Viewer`]).
//! getRepoStatus answers everyone with the status, as the reference.
//! getRepo and getCheckout stream the CAR straight from the store (see `sync/car_stream.rs`).
//! listRepos lists every account with a repository, whatever its status, ordered by DID.

mod car_stream;
mod repo_car;
mod viewer;

pub use repo_car::{get_blocks, get_checkout, get_record, get_repo};
pub use viewer::Viewer;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use atp_syntax::{Did, Tid};
use pds_store::{Account, BlobStatus};

use crate::api::error::XrpcError;
use crate::api::extract::{XrpcQuery, cid_cursor, page_limit, parse_param};
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

/// `com.atproto.sync.getBlob`: the bytes of a permanent blob, sandboxed; not for a repository
/// that is not served (but to its owner and the administrator), nor for a taken-down blob
/// (`BlobNotFound`, to everyone), as the reference.
pub async fn get_blob(
    State(state): State<AppState>,
    viewer: Viewer,
    XrpcQuery(p): XrpcQuery<GetBlobParams>,
) -> Result<Response, XrpcError> {
    let did: Did = parse_param("did", &p.did)?;
    let cid = atp_data::cid::parse(&p.cid)
        .map_err(|e| XrpcError::invalid_request(format!("Invalid cid: {e}")))?;
    assert_repo_availability(&state, &did, &viewer).await?;
    let meta = state.store().get_blob(&did, &cid).await?;
    let Some(meta) = meta.filter(|m| m.status == BlobStatus::Permanent && m.takedown_ref.is_none())
    else {
        return Err(blob_not_found());
    };
    let blobs = state.writer().blobs();
    let file = match &meta.temp_key {
        Some(key) => tokio::fs::File::open(blobs.temp_path(key)).await,
        // A lifted takedown whose file has not moved back yet still serves it.
        None => match tokio::fs::File::open(blobs.permanent_path(&did, &cid)).await {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tokio::fs::File::open(blobs.quarantine_path(&did, &cid)).await
            }
            opened => opened,
        },
    };
    let file = file.map_err(|_| blob_not_found())?;
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

/// The parameters of the endpoints that take only `did`.
#[derive(Debug, Deserialize)]
pub struct DidParams {
    did: String,
}

/// getLatestCommit parameters.
#[derive(Debug, Deserialize)]
pub struct GetLatestCommitParams {
    did: String,
}

/// `com.atproto.sync.getLatestCommit`.
pub async fn get_latest_commit(
    State(state): State<AppState>,
    viewer: Viewer,
    XrpcQuery(p): XrpcQuery<GetLatestCommitParams>,
) -> Result<Json<Value>, XrpcError> {
    let did: Did = parse_param("did", &p.did)?;
    assert_repo_availability(&state, &did, &viewer).await?;
    let root = state.store().repo_root(&did).await?.ok_or_else(|| {
        XrpcError::invalid_request(format!("Could not find root for DID: {did}"))
            .named("RepoNotFound")
    })?;
    Ok(Json(
        json!({"cid": root.commit.to_string(), "rev": root.rev.to_string()}),
    ))
}

/// The account of `did` if `viewer` may read its repository: always its owner and the
/// administrator, anyone else only while it is active (the reference's
/// `assertRepoAvailability(ctx, did, isUserOrAdmin(auth, did))`).
pub(crate) async fn assert_repo_availability(
    state: &AppState,
    did: &Did,
    viewer: &Viewer,
) -> Result<Account, XrpcError> {
    let account = state.store().get_account(did).await?;
    repo_availability(account, did.as_str(), viewer.is_owner_or_admin(did))
}

/// The reference's `assertRepoAvailability` on an account already looked up by `repo` (a DID or
/// handle, named in the messages): unknown → `RepoNotFound`; unless `owner_or_admin`, taken
/// down → `RepoTakendown`, then deactivated → `RepoDeactivated`.
pub(crate) fn repo_availability(
    account: Option<Account>,
    repo: &str,
    owner_or_admin: bool,
) -> Result<Account, XrpcError> {
    let Some(account) = account else {
        return Err(
            XrpcError::invalid_request(format!("Could not find repo for DID: {repo}"))
                .named("RepoNotFound"),
        );
    };
    if owner_or_admin {
        return Ok(account);
    }
    if account.takedown_ref.is_some() {
        return Err(
            XrpcError::invalid_request(format!("Repo has been takendown: {repo}"))
                .named("RepoTakendown"),
        );
    }
    if account.deactivated_at.is_some() {
        return Err(
            XrpcError::invalid_request(format!("Repo has been deactivated: {repo}"))
                .named("RepoDeactivated"),
        );
    }
    Ok(account)
}

/// `com.atproto.sync.getRepoStatus`: whether the account is active, why not, and its rev.
pub async fn get_repo_status(
    State(state): State<AppState>,
    XrpcQuery(p): XrpcQuery<DidParams>,
) -> Result<Json<Value>, XrpcError> {
    let did: Did = parse_param("did", &p.did)?;
    let Some(account) = state.store().get_account(&did).await? else {
        return Err(
            XrpcError::invalid_request(format!("Could not find repo for DID: {did}"))
                .named("RepoNotFound"),
        );
    };
    let mut out = json!({"did": did.as_str(), "active": account.is_active()});
    if account.takedown_ref.is_some() {
        out["status"] = json!("takendown");
    } else if account.deactivated_at.is_some() {
        out["status"] = json!("deactivated");
    } else if let Some(root) = state.store().repo_root(&did).await? {
        out["rev"] = json!(root.rev.as_str());
    }
    Ok(Json(out))
}

/// `com.atproto.sync.getHead` (deprecated): the current commit's CID.
pub async fn get_head(
    State(state): State<AppState>,
    viewer: Viewer,
    XrpcQuery(p): XrpcQuery<DidParams>,
) -> Result<Json<Value>, XrpcError> {
    let did: Did = parse_param("did", &p.did)?;
    assert_repo_availability(&state, &did, &viewer).await?;
    let root = state.store().repo_root(&did).await?.ok_or_else(|| {
        XrpcError::invalid_request(format!("Could not find root for DID: {did}"))
            .named("HeadNotFound")
    })?;
    Ok(Json(json!({"root": root.commit.to_string()})))
}

/// listBlobs parameters.
#[derive(Debug, Deserialize)]
pub struct ListBlobsParams {
    did: String,
    since: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `com.atproto.sync.listBlobs`: CIDs of the blobs records reference (written after `since`),
/// in CID order; the cursor is the last CID of the page.
pub async fn list_blobs(
    State(state): State<AppState>,
    viewer: Viewer,
    XrpcQuery(p): XrpcQuery<ListBlobsParams>,
) -> Result<Json<Value>, XrpcError> {
    let did: Did = parse_param("did", &p.did)?;
    let since: Option<Tid> = p
        .since
        .as_deref()
        .map(|s| parse_param("since", s))
        .transpose()?;
    let limit = page_limit(p.limit, 500, 1000)?;
    let after = cid_cursor(p.cursor.as_deref())?;
    assert_repo_availability(&state, &did, &viewer).await?;
    let cids = state.store().list_blobs(&did, since, after, limit).await?;
    let mut out = json!({"cids": cids.iter().map(|c| c.to_string()).collect::<Vec<_>>()});
    if let Some(last) = cids.last() {
        out["cursor"] = json!(last.to_string());
    }
    Ok(Json(out))
}

/// listRepos parameters.
#[derive(Debug, Deserialize)]
pub struct ListReposParams {
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `com.atproto.sync.listRepos`: every hosted repository with its head, rev and status,
/// ordered by DID; the cursor is the last DID of the page.
pub async fn list_repos(
    State(state): State<AppState>,
    XrpcQuery(p): XrpcQuery<ListReposParams>,
) -> Result<Json<Value>, XrpcError> {
    let limit = page_limit(p.limit, 500, 1000)?;
    let after: Option<Did> = p
        .cursor
        .as_deref()
        .map(|c| parse_param("cursor", c))
        .transpose()?;
    let repos = state.store().list_repos(after.as_ref(), limit).await?;
    let list: Vec<Value> = repos
        .iter()
        .map(|r| {
            let mut repo = json!({
                "did": r.account.did.as_str(),
                "head": r.root.commit.to_string(),
                "rev": r.root.rev.as_str(),
                "active": r.account.is_active(),
            });
            if r.account.takedown_ref.is_some() {
                repo["status"] = json!("takendown");
            } else if r.account.deactivated_at.is_some() {
                repo["status"] = json!("deactivated");
            }
            repo
        })
        .collect();
    let mut out = json!({ "repos": list });
    // As the reference (and listBlobs): a cursor whenever the page is not empty.
    if let Some(last) = repos.last() {
        out["cursor"] = json!(last.account.did.as_str());
    }
    Ok(Json(out))
}
