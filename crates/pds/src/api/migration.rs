//! Account migration endpoints: `repo.importRepo`, `repo.listMissingBlobs`,
//! `identity.getRecommendedDidCredentials`, `identity.submitPlcOperation`,
//! `identity.signPlcOperation`, and `server.createAccount` with an existing DID (called from
//! `server::create_account`). The work is in `service::migration` and `service::repo_import`.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use atp_syntax::Did;

use crate::api::error::XrpcError;
use crate::api::extract::{XrpcJson, XrpcQuery, cid_cursor, page_limit, parse_param};
use crate::auth::{AccessAuth, Scope};
use crate::service::account::Session;
use crate::service::migration::{self, CREATE_ACCOUNT_LXM, IncomingAccount, SignPlcRequest};
use crate::service::repo_import;
use crate::state::AppState;

/// The content type of a repository import.
const CAR_MIME: &str = "application/vnd.ipld.car";

/// Refuses app-password sessions (the reference's `ACCESS_FULL`).
fn require_full_access(auth: &AccessAuth) -> Result<(), XrpcError> {
    if auth.scope == Scope::Access {
        Ok(())
    } else {
        Err(XrpcError::new(
            StatusCode::UNAUTHORIZED,
            "InvalidToken",
            "Bad token scope",
        ))
    }
}

/// The service-auth token of an account creation with an existing DID, verified: its issuer.
/// No `Authorization` header → `None` (createAccount then says which auth is missing).
pub async fn create_account_requester(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Did>, XrpcError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| XrpcError::auth_required("Unexpected authorization type"))?;
    migration::verify_service_auth(state, token, CREATE_ACCOUNT_LXM)
        .await
        .map(Some)
}

/// `createAccount` with `did`: a deactivated account for a DID hosted elsewhere.
pub async fn create_account_with_did(
    state: &AppState,
    headers: &HeaderMap,
    req: IncomingAccount,
) -> Result<Session, XrpcError> {
    let requester = create_account_requester(state, headers).await?;
    migration::create_incoming_account(state, requester, req).await
}

/// `com.atproto.repo.importRepo`: a repository CAR into the caller's deactivated account.
///
/// A refusal may come before the body was read to its end (a declared size over the limit, a
/// CAR that fails early): it closes the connection (`Connection: close`), so that a client does
/// not reuse it while the rest of its upload is still in flight.
pub async fn import_repo(
    State(state): State<AppState>,
    auth: Result<AccessAuth, XrpcError>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = match auth {
        Ok(auth) => import_repo_checked(&state, auth, &headers, body).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => {
            let mut response = e.into_response();
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

async fn import_repo_checked(
    state: &AppState,
    auth: AccessAuth,
    headers: &HeaderMap,
    body: Body,
) -> Result<(), XrpcError> {
    require_full_access(&auth)?;
    let config = state.config();
    if !config.accepting_repo_imports {
        return Err(XrpcError::invalid_request(
            "Service is not accepting repo imports",
        ));
    }
    let encoding = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    if encoding.as_deref() != Some(CAR_MIME) {
        return Err(XrpcError::invalid_request(format!(
            "Wrong request encoding (Content-Type): {}",
            encoding.unwrap_or_default()
        )));
    }
    let limit = config.max_repo_import_size;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(repo_import::too_large(limit));
    }
    let stream = body
        .into_data_stream()
        .map(|c| c.map_err(std::io::Error::other));
    let summary = repo_import::import_repo(state, &auth.did, stream, limit).await?;
    tracing::info!(
        did = %auth.did,
        commit = %summary.commit,
        bytes = summary.bytes,
        blocks = summary.outcome.blocks,
        records = summary.outcome.records,
        "imported a repository"
    );
    Ok(())
}

/// listMissingBlobs parameters.
#[derive(Debug, Deserialize)]
pub struct ListMissingBlobsParams {
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `com.atproto.repo.listMissingBlobs`: blobs records reference that were never uploaded.
pub async fn list_missing_blobs(
    State(state): State<AppState>,
    auth: AccessAuth,
    XrpcQuery(p): XrpcQuery<ListMissingBlobsParams>,
) -> Result<Json<Value>, XrpcError> {
    let limit = page_limit(p.limit, 500, 1000)?;
    let after = cid_cursor(p.cursor.as_deref())?;
    let blobs = state
        .store()
        .list_missing_blobs(&auth.did, after, limit)
        .await?;
    let mut out = json!({
        "blobs": blobs
            .iter()
            .map(|b| json!({"cid": b.cid.to_string(), "recordUri": b.record_uri}))
            .collect::<Vec<_>>(),
    });
    if let Some(last) = blobs.last() {
        out["cursor"] = json!(last.cid.to_string());
    }
    Ok(Json(out))
}

/// `com.atproto.identity.getRecommendedDidCredentials`.
pub async fn get_recommended_did_credentials(
    State(state): State<AppState>,
    auth: AccessAuth,
) -> Result<Json<Value>, XrpcError> {
    Ok(Json(
        migration::recommended_credentials(&state, &auth.did).await?,
    ))
}

/// submitPlcOperation input.
#[derive(Debug, Deserialize)]
pub struct SubmitPlcOperationInput {
    operation: Value,
}

/// `com.atproto.identity.submitPlcOperation`.
pub async fn submit_plc_operation(
    State(state): State<AppState>,
    auth: AccessAuth,
    XrpcJson(input): XrpcJson<SubmitPlcOperationInput>,
) -> Result<(), XrpcError> {
    migration::submit_plc_operation(&state, &auth.did, input.operation).await
}

/// `com.atproto.identity.signPlcOperation`: full sessions only.
pub async fn sign_plc_operation(
    State(state): State<AppState>,
    auth: AccessAuth,
    XrpcJson(input): XrpcJson<SignPlcRequest>,
) -> Result<Json<Value>, XrpcError> {
    require_full_access(&auth)?;
    Ok(Json(
        migration::sign_plc_operation(&state, &auth.did, input).await?,
    ))
}

/// Parses createAccount's `did`.
pub fn parse_did(did: &str) -> Result<Did, XrpcError> {
    parse_param("did", did)
}
