//! `com.atproto.server.*`: describeServer, accounts and sessions, app passwords, invite codes,
//! account status and signing-key reservation.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use chrono::{DateTime, SecondsFormat, Utc};
use data_encoding::BASE64;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use atp_syntax::{Datetime, Did};

use crate::api::error::XrpcError;
use crate::api::extract::{XrpcJson, XrpcQuery, parse_param};
use crate::auth::{AccessAuth, RefreshAuth, Scope};
use crate::service::account::{self, NewAccountRequest, Session};
use crate::service::{credentials, signing_key, status};
use crate::state::AppState;

/// Adds `"status"` to `body` when the account is not active (absent otherwise).
fn with_status(mut body: Value, status: Option<&'static str>) -> Json<Value> {
    if let (Some(status), Some(map)) = (status, body.as_object_mut()) {
        map.insert("status".to_owned(), Value::from(status));
    }
    Json(body)
}

fn session_json(s: &Session) -> Json<Value> {
    with_status(
        json!({
            "did": s.did.as_str(),
            "handle": s.handle.as_str(),
            "email": s.email,
            "accessJwt": s.access_jwt,
            "refreshJwt": s.refresh_jwt,
            "active": s.status.is_none(),
        }),
        s.status,
    )
}

/// createSession's and refreshSession's output: [`session_json`] with the account's email state.
fn login_json(s: &Session) -> Json<Value> {
    let Json(mut body) = session_json(s);
    if let Some(map) = body.as_object_mut() {
        map.insert("emailConfirmed".to_owned(), s.email_confirmed.into());
        map.insert("emailAuthFactor".to_owned(), s.email_auth_factor.into());
    }
    Json(body)
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
    headers: axum::http::HeaderMap,
    XrpcJson(input): XrpcJson<CreateAccountInput>,
) -> Result<Json<Value>, XrpcError> {
    if let Some(did) = &input.did {
        // Migration: an existing DID, authorized by the old host's service-auth token.
        let req = crate::service::migration::IncomingAccount {
            did: crate::api::migration::parse_did(did)?,
            handle: input.handle,
            email: input.email,
            password: input.password,
            invite_code: input.invite_code,
        };
        let session = crate::api::migration::create_account_with_did(&state, &headers, req).await?;
        return Ok(session_json(&session));
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
#[serde(rename_all = "camelCase")]
pub struct CreateSessionInput {
    identifier: String,
    password: String,
    auth_factor_token: Option<String>,
}

/// `com.atproto.server.createSession`: a password, then the email sign-in factor
/// (`authFactorToken`; see `credentials::check_email_auth_factor`).
pub async fn create_session(
    State(state): State<AppState>,
    XrpcJson(input): XrpcJson<CreateSessionInput>,
) -> Result<Json<Value>, XrpcError> {
    let login = account::check_login(&state, &input.identifier, input.password).await?;
    credentials::check_email_auth_factor(&state, &login, input.auth_factor_token.as_deref())
        .await?;
    let session = account::start_login_session(&state, login).await?;
    if session.status == Some("takendown") {
        // As the reference: right credentials, but no session for a taken-down account. The
        // service already stored a refresh token; revoke it (a taken-down account keeps none).
        state.store().delete_refresh_tokens(&session.did).await?;
        return Err(XrpcError::account_takedown());
    }
    Ok(login_json(&session))
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
    Ok(with_status(
        json!({
            "did": account.did.as_str(),
            "handle": account.handle.as_str(),
            "email": account.email,
            "emailConfirmed": account.email_confirmed_at.is_some(),
            "emailAuthFactor": account.email_auth_factor_at.is_some(),
            "active": account.is_active(),
        }),
        account::inactive_status(&account),
    ))
}

/// `com.atproto.server.refreshSession`.
pub async fn refresh_session(
    State(state): State<AppState>,
    auth: RefreshAuth,
) -> Result<Json<Value>, XrpcError> {
    let session = account::refresh_session(&state, &auth.jti).await?;
    Ok(login_json(&session))
}

/// `com.atproto.server.deleteSession`.
pub async fn delete_session(
    State(state): State<AppState>,
    auth: RefreshAuth,
) -> Result<(), XrpcError> {
    state.store().delete_refresh_token(&auth.jti).await?;
    Ok(())
}

fn datetime(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Refuses app-password sessions (the reference's `accessFull`).
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

/// A request authenticated as the administrator: HTTP basic auth `admin:<PDS_ADMIN_PASSWORD>`.
#[derive(Debug, Clone, Copy)]
pub struct AdminAuth;

/// Compares the SHA-256 digests of `a` and `b` without an early exit.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let (da, db) = (Sha256::digest(a), Sha256::digest(b));
    da.iter()
        .zip(db.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = XrpcError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, XrpcError> {
        let denied = || XrpcError::auth_required("Authentication Required");
        let encoded = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .ok_or_else(denied)?;
        let decoded = BASE64
            .decode(encoded.trim().as_bytes())
            .map_err(|_| denied())?;
        let text = String::from_utf8(decoded).map_err(|_| denied())?;
        let (user, password) = text.split_once(':').ok_or_else(denied)?;
        let expected = state.secrets().admin_password.as_bytes();
        if user == "admin" && constant_time_eq(password.as_bytes(), expected) {
            Ok(AdminAuth)
        } else {
            Err(denied())
        }
    }
}

/// createAppPassword input.
#[derive(Debug, Deserialize)]
pub struct CreateAppPasswordInput {
    name: String,
    #[serde(default)]
    privileged: bool,
}

/// `com.atproto.server.createAppPassword`: full sessions of accounts not taken down only; the
/// password is returned once.
pub async fn create_app_password(
    State(state): State<AppState>,
    auth: AccessAuth,
    XrpcJson(input): XrpcJson<CreateAppPasswordInput>,
) -> Result<Json<Value>, XrpcError> {
    require_full_access(&auth)?;
    auth.check_takedown(&state).await?;
    let created =
        credentials::create_app_password(&state, &auth.did, input.name, input.privileged).await?;
    Ok(Json(json!({
        "name": created.name,
        "password": created.password,
        "createdAt": datetime(&created.created_at),
        "privileged": created.privileged,
    })))
}

/// `com.atproto.server.listAppPasswords`.
pub async fn list_app_passwords(
    State(state): State<AppState>,
    auth: AccessAuth,
) -> Result<Json<Value>, XrpcError> {
    let passwords = state.store().list_app_passwords(&auth.did).await?;
    let passwords: Vec<Value> = passwords
        .iter()
        .map(|p| json!({"name": p.name, "createdAt": datetime(&p.created_at), "privileged": p.privileged}))
        .collect();
    Ok(Json(json!({ "passwords": passwords })))
}

/// revokeAppPassword input.
#[derive(Debug, Deserialize)]
pub struct RevokeAppPasswordInput {
    name: String,
}

/// `com.atproto.server.revokeAppPassword`: also revokes the sessions created with it.
pub async fn revoke_app_password(
    State(state): State<AppState>,
    auth: AccessAuth,
    XrpcJson(input): XrpcJson<RevokeAppPasswordInput>,
) -> Result<(), XrpcError> {
    require_full_access(&auth)?;
    state
        .store()
        .delete_app_password(&auth.did, &input.name)
        .await?;
    Ok(())
}

/// createInviteCode input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateInviteCodeInput {
    use_count: u32,
    for_account: Option<String>,
}

fn invite_owner(account: Option<&str>) -> Result<String, XrpcError> {
    match account {
        None => Ok(credentials::ADMIN_ACCOUNT.to_owned()),
        Some(a) => Ok(parse_param::<Did>("forAccount", a)?.to_string()),
    }
}

/// `com.atproto.server.createInviteCode` (administrator).
pub async fn create_invite_code(
    State(state): State<AppState>,
    _admin: AdminAuth,
    XrpcJson(input): XrpcJson<CreateInviteCodeInput>,
) -> Result<Json<Value>, XrpcError> {
    let owner = invite_owner(input.for_account.as_deref())?;
    let created = credentials::create_invite_codes(&state, &[owner], 1, input.use_count).await?;
    let code = created.into_iter().flat_map(|(_, codes)| codes).next();
    Ok(Json(json!({ "code": code })))
}

/// createInviteCodes input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateInviteCodesInput {
    #[serde(default = "one")]
    code_count: u32,
    use_count: u32,
    for_accounts: Option<Vec<String>>,
}

fn one() -> u32 {
    1
}

/// `com.atproto.server.createInviteCodes` (administrator).
pub async fn create_invite_codes(
    State(state): State<AppState>,
    _admin: AdminAuth,
    XrpcJson(input): XrpcJson<CreateInviteCodesInput>,
) -> Result<Json<Value>, XrpcError> {
    let owners = match &input.for_accounts {
        None => vec![invite_owner(None)?],
        Some(list) => list
            .iter()
            .map(|a| invite_owner(Some(a)))
            .collect::<Result<_, _>>()?,
    };
    let created =
        credentials::create_invite_codes(&state, &owners, input.code_count, input.use_count)
            .await?;
    let codes: Vec<Value> = created
        .into_iter()
        .map(|(account, codes)| json!({"account": account, "codes": codes}))
        .collect();
    Ok(Json(json!({ "codes": codes })))
}

/// getAccountInviteCodes parameters.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetAccountInviteCodesParams {
    include_used: Option<bool>,
    /// Accepted; this server has no invite-code schedule, so nothing is created.
    #[allow(dead_code)]
    create_available: Option<bool>,
}

/// `com.atproto.server.getAccountInviteCodes`.
pub async fn get_account_invite_codes(
    State(state): State<AppState>,
    auth: AccessAuth,
    XrpcQuery(p): XrpcQuery<GetAccountInviteCodesParams>,
) -> Result<Json<Value>, XrpcError> {
    require_full_access(&auth)?;
    let include_used = p.include_used.unwrap_or(true);
    let codes = credentials::account_invite_codes(&state, &auth.did, include_used).await?;
    let codes: Vec<Value> = codes
        .iter()
        .map(crate::api::admin::invite_code_json)
        .collect();
    Ok(Json(json!({ "codes": codes })))
}

/// deactivateAccount input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeactivateAccountInput {
    delete_after: Option<String>,
}

/// `com.atproto.server.deactivateAccount`.
pub async fn deactivate_account(
    State(state): State<AppState>,
    auth: AccessAuth,
    XrpcJson(input): XrpcJson<DeactivateAccountInput>,
) -> Result<(), XrpcError> {
    require_full_access(&auth)?;
    let delete_after = input
        .delete_after
        .as_deref()
        .map(|d| parse_param::<Datetime>("deleteAfter", d))
        .transpose()?
        .map(|d| d.to_chrono().with_timezone(&Utc));
    status::deactivate(&state, &auth.did, delete_after).await?;
    Ok(())
}

/// `com.atproto.server.activateAccount`.
pub async fn activate_account(
    State(state): State<AppState>,
    auth: AccessAuth,
) -> Result<(), XrpcError> {
    require_full_access(&auth)?;
    status::activate(&state, &auth.did).await?;
    Ok(())
}

/// `com.atproto.server.checkAccountStatus`.
pub async fn check_account_status(
    State(state): State<AppState>,
    auth: AccessAuth,
) -> Result<Json<Value>, XrpcError> {
    let s = status::check(&state, &auth.did).await?;
    Ok(Json(json!({
        "activated": s.activated,
        "validDid": s.valid_did,
        "repoCommit": s.repo_commit,
        "repoRev": s.repo_rev,
        "repoBlocks": s.repo_blocks,
        "indexedRecords": s.indexed_records,
        "privateStateValues": s.private_state_values,
        "expectedBlobs": s.expected_blobs,
        "importedBlobs": s.imported_blobs,
    })))
}

/// reserveSigningKey input.
#[derive(Debug, Deserialize)]
pub struct ReserveSigningKeyInput {
    did: Option<String>,
}

/// `com.atproto.server.reserveSigningKey`: no authentication, as the reference.
pub async fn reserve_signing_key(
    State(state): State<AppState>,
    XrpcJson(input): XrpcJson<ReserveSigningKeyInput>,
) -> Result<Json<Value>, XrpcError> {
    let did = input
        .did
        .as_deref()
        .map(|d| parse_param::<Did>("did", d))
        .transpose()?;
    let key = signing_key::reserve(&state, did.as_ref()).await?;
    Ok(Json(json!({ "signingKey": key })))
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use serde_json::json;

    use super::super::tests::harness;

    #[tokio::test]
    async fn create_session_refuses_a_taken_down_account() {
        let h = harness();
        let (did, _, _) = h.alice().await;
        let did: atp_syntax::Did = did.parse().unwrap();
        let login = json!({"identifier": "alice.test", "password": "hunter22"});
        h.state
            .store()
            .set_account_takedown(&did, Some("ticket-1".to_owned()))
            .await
            .unwrap();
        let (status, body) = h
            .post("com.atproto.server.createSession", None, login.clone())
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"], "AccountTakedown");
        assert_eq!(body["message"], "Account has been taken down");
        // A wrong password still says only that.
        let (status, body) = h
            .post(
                "com.atproto.server.createSession",
                None,
                json!({"identifier": "alice.test", "password": "wrong"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_ne!(body["error"], "AccountTakedown");
        // Lifting the takedown restores logins.
        h.state
            .store()
            .set_account_takedown(&did, None)
            .await
            .unwrap();
        let (status, body) = h
            .post("com.atproto.server.createSession", None, login)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}
