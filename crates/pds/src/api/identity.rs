//! `com.atproto.identity.*`: resolveHandle (local accounts, then DNS / HTTPS resolution),
//! updateHandle, and `/.well-known/atproto-did` for hosted handles.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use atp_identity::Resolver;
use atp_syntax::Handle;

use crate::api::error::XrpcError;
use crate::api::extract::{XrpcJson, XrpcQuery, parse_param};
use crate::auth::AccessAuth;
use crate::service::handle;
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

/// updateHandle input.
#[derive(Debug, Deserialize)]
pub struct UpdateHandleInput {
    handle: String,
}

/// `com.atproto.identity.updateHandle`.
pub async fn update_handle(
    State(state): State<AppState>,
    auth: AccessAuth,
    XrpcJson(input): XrpcJson<UpdateHandleInput>,
) -> Result<(), XrpcError> {
    handle::update_handle(&state, &auth.did, &input.handle).await?;
    Ok(())
}

/// `GET /.well-known/atproto-did`: the DID of the hosted handle named by the `Host` header.
pub async fn well_known_atproto_did(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let not_found = || (StatusCode::NOT_FOUND, "User not found").into_response();
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return not_found();
    };
    let name = host
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let hosted = state
        .config()
        .service_handle_domains
        .iter()
        .any(|d| name.ends_with(d.as_str()) || d.strip_prefix('.') == Some(name.as_str()));
    let Ok(handle) = name.parse::<Handle>() else {
        return not_found();
    };
    if !hosted {
        return not_found();
    }
    match state.store().get_account_by_handle(&handle).await {
        Ok(Some(account)) => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            account.did.to_string(),
        )
            .into_response(),
        Ok(None) => not_found(),
        Err(e) => XrpcError::from(e).into_response(),
    }
}
