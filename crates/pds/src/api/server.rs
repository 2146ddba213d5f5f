//! `com.atproto.server.*`: describeServer, accounts and sessions.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::error::XrpcError;
use crate::api::extract::XrpcJson;
use crate::auth::{AccessAuth, RefreshAuth};
use crate::service::account::{self, NewAccountRequest, Session};
use crate::state::AppState;

fn session_json(s: &Session) -> Json<Value> {
    Json(json!({
        "did": s.did.as_str(),
        "handle": s.handle.as_str(),
        "email": s.email,
        "accessJwt": s.access_jwt,
        "refreshJwt": s.refresh_jwt,
        "active": true,
    }))
}

/// `com.atproto.server.describeServer`.
pub async fn describe_server(State(state): State<AppState>) -> Json<Value> {
    let c = state.config();
    Json(json!({
        "did": c.service_did(),
        "availableUserDomains": c.service_handle_domains,
        "inviteCodeRequired": c.invite_required,
        "phoneVerificationRequired": false,
        "links": {},
        "contact": {},
    }))
}

/// createAccount input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateAccountInput {
    handle: String,
    email: Option<String>,
    password: Option<String>,
    invite_code: Option<String>,
    did: Option<String>,
}

/// `com.atproto.server.createAccount`.
pub async fn create_account(
    State(state): State<AppState>,
    XrpcJson(input): XrpcJson<CreateAccountInput>,
) -> Result<Json<Value>, XrpcError> {
    if input.did.is_some() {
        return Err(XrpcError::not_implemented(
            "com.atproto.server.createAccount with an existing DID",
        ));
    }
    let req = NewAccountRequest {
        handle: input.handle,
        email: input.email,
        password: input.password,
        invite_code: input.invite_code,
    };
    let session = account::create_account(&state, req).await?;
    Ok(session_json(&session))
}

/// createSession input.
#[derive(Debug, Deserialize)]
pub struct CreateSessionInput {
    identifier: String,
    password: String,
}

/// `com.atproto.server.createSession`.
pub async fn create_session(
    State(state): State<AppState>,
    XrpcJson(input): XrpcJson<CreateSessionInput>,
) -> Result<Json<Value>, XrpcError> {
    let session = account::create_session(&state, &input.identifier, input.password).await?;
    Ok(session_json(&session))
}

/// `com.atproto.server.getSession`.
pub async fn get_session(
    State(state): State<AppState>,
    auth: AccessAuth,
) -> Result<Json<Value>, XrpcError> {
    let account = state
        .store()
        .get_account(&auth.did)
        .await?
        .ok_or_else(|| XrpcError::invalid_token("Account not found"))?;
    Ok(Json(json!({
        "did": account.did.as_str(),
        "handle": account.handle.as_str(),
        "email": account.email,
        "emailConfirmed": account.email_confirmed_at.is_some(),
        "active": account.is_active(),
    })))
}

/// `com.atproto.server.refreshSession`.
pub async fn refresh_session(
    State(state): State<AppState>,
    auth: RefreshAuth,
) -> Result<Json<Value>, XrpcError> {
    let session = account::refresh_session(&state, &auth.jti).await?;
    Ok(session_json(&session))
}

/// `com.atproto.server.deleteSession`.
pub async fn delete_session(
    State(state): State<AppState>,
    auth: RefreshAuth,
) -> Result<(), XrpcError> {
    state.store().delete_refresh_token(&auth.jti).await?;
    Ok(())
}
