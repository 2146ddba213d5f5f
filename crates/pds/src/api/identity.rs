//! `com.atproto.identity.*`: resolveHandle (local accounts, then DNS / HTTPS resolution),
//! resolveDid, resolveIdentity and refreshIdentity (rules in `service::resolution`),
//! updateHandle, and `/.well-known/atproto-did` for hosted handles.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use atp_syntax::{AtIdentifier, Did, Handle};

use crate::api::error::XrpcError;
use crate::api::extract::{XrpcJson, XrpcQuery, parse_param};
use crate::auth::AccessAuth;
use crate::service::handle;
use crate::service::resolution::{self, IdentityError};
use crate::state::AppState;

/// resolveHandle parameters.
#[derive(Debug, Deserialize)]
pub struct ResolveHandleParams {
    handle: String,
}

/// `com.atproto.identity.resolveHandle`: handles of accounts hosted here first (a handle under
/// a service domain that no account holds is not found), then the network resolver (DNS TXT,
/// then `/.well-known/atproto-did`), without the bidirectional check, as the reference does.
pub async fn resolve_handle(
    State(state): State<AppState>,
    XrpcQuery(p): XrpcQuery<ResolveHandleParams>,
) -> Result<Json<Value>, XrpcError> {
    let handle: Handle = parse_param("handle", &p.handle.to_ascii_lowercase())?;
    match resolution::resolve_handle(&state, &handle, false).await {
        Ok(did) => Ok(Json(json!({"did": did.as_str()}))),
        Err(IdentityError::Store(e)) => Err(e.into()),
        Err(_) => {
            Err(XrpcError::invalid_request("Unable to resolve handle").named("HandleNotFound"))
        }
    }
}

impl From<IdentityError> for XrpcError {
    fn from(e: IdentityError) -> Self {
        let message = e.to_string();
        match e {
            IdentityError::HandleNotFound(_) => {
                XrpcError::invalid_request(message).named("HandleNotFound")
            }
            IdentityError::DidNotFound(_) => {
                XrpcError::invalid_request(message).named("DidNotFound")
            }
            IdentityError::DidDeactivated(_) => {
                XrpcError::invalid_request(message).named("DidDeactivated")
            }
            IdentityError::Unsupported(_) => XrpcError::invalid_request(message),
            IdentityError::Upstream(_) => {
                XrpcError::new(StatusCode::BAD_GATEWAY, "UpstreamFailure", message)
            }
            IdentityError::Store(e) => e.into(),
        }
    }
}

/// resolveDid parameters.
#[derive(Debug, Deserialize)]
pub struct ResolveDidParams {
    did: String,
}

/// `com.atproto.identity.resolveDid`: the DID document, without any handle check.
pub async fn resolve_did(
    State(state): State<AppState>,
    XrpcQuery(p): XrpcQuery<ResolveDidParams>,
) -> Result<Json<Value>, XrpcError> {
    let did: Did = parse_param("did", &p.did)?;
    let doc = resolution::resolve_did(&state, &did, false).await?;
    Ok(Json(json!({"didDoc": doc.to_json()})))
}

/// resolveIdentity parameters.
#[derive(Debug, Deserialize)]
pub struct ResolveIdentityParams {
    identifier: String,
}

async fn identity(
    state: &AppState,
    identifier: &str,
    fresh: bool,
) -> Result<Json<Value>, XrpcError> {
    let info = match parse_param::<AtIdentifier>("identifier", identifier)? {
        AtIdentifier::Did(did) => resolution::identity_from_did(state, &did, fresh).await?,
        AtIdentifier::Handle(handle) => {
            resolution::identity_from_handle(state, &handle, fresh).await?
        }
    };
    Ok(Json(info.to_json()))
}

/// `com.atproto.identity.resolveIdentity`: DID document and bidirectionally verified handle
/// (`handle.invalid` when a DID's handle does not resolve back to it).
pub async fn resolve_identity(
    State(state): State<AppState>,
    XrpcQuery(p): XrpcQuery<ResolveIdentityParams>,
) -> Result<Json<Value>, XrpcError> {
    identity(&state, &p.identifier, false).await
}

/// `com.atproto.identity.refreshIdentity`: like resolveIdentity, after dropping what the
/// resolver cached about the identity. Open to anyone, like resolveIdentity (the reference
/// identity service does not require auth either).
pub async fn refresh_identity(
    State(state): State<AppState>,
    XrpcJson(input): XrpcJson<Value>,
) -> Result<Json<Value>, XrpcError> {
    let body = input
        .as_object()
        .ok_or_else(|| XrpcError::invalid_request("Input must be an object"))?;
    let identifier = match body.get("identifier") {
        None => {
            return Err(XrpcError::invalid_request(
                "Input must have the property \"identifier\"",
            ));
        }
        Some(Value::String(s)) => s.as_str(),
        Some(_) => {
            return Err(XrpcError::invalid_request(
                "Input/identifier must be a string",
            ));
        }
    };
    identity(&state, identifier, true).await
}

/// updateHandle input.
#[derive(Debug, Deserialize)]
pub struct UpdateHandleInput {
    handle: String,
}

/// `com.atproto.identity.updateHandle` (refused to a taken-down account, as the reference).
pub async fn update_handle(
    State(state): State<AppState>,
    auth: AccessAuth,
    XrpcJson(input): XrpcJson<UpdateHandleInput>,
) -> Result<(), XrpcError> {
    auth.check_takedown(&state).await?;
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
