//! `com.atproto.identity.*`: resolveHandle (local accounts, then DNS / HTTPS resolution).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use atp_identity::Resolver;
use atp_syntax::Handle;

use crate::api::error::XrpcError;
use crate::api::extract::{XrpcQuery, parse_param};
use crate::state::AppState;

/// resolveHandle parameters.
#[derive(Debug, Deserialize)]
pub struct ResolveHandleParams {
    handle: String,
}

/// `com.atproto.identity.resolveHandle`: handles of accounts hosted here first, then the
/// network resolver (DNS TXT, then `/.well-known/atproto-did`), without the bidirectional
/// check, as the reference does.
pub async fn resolve_handle(
    State(state): State<AppState>,
    XrpcQuery(p): XrpcQuery<ResolveHandleParams>,
) -> Result<Json<Value>, XrpcError> {
    let handle: Handle = parse_param("handle", &p.handle.to_ascii_lowercase())?;
    let account = state.store().get_account_by_handle(&handle).await?;
    if let Some(a) = account {
        return Ok(Json(json!({"did": a.did.as_str()})));
    }
    let not_found =
        || XrpcError::invalid_request("Unable to resolve handle").named("HandleNotFound");
    let resolver = state.resolver().ok_or_else(not_found)?;
    let did = resolver
        .resolve_handle(&handle)
        .await
        .map_err(|_| not_found())?;
    Ok(Json(json!({"did": did.as_str()})))
}
