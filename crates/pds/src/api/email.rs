//! The methods that mail a one-time code and the ones that use it: email confirmation and
//! change, password reset, account deletion, the PLC-operation code
//! (`com.atproto.identity.requestPlcOperationSignature`; `signPlcOperation` consumes it), and
//! the administrator's `com.atproto.admin.sendEmail` and `updateAccountEmail`. updateEmail also
//! switches the email sign-in factor (`emailAuthFactor`), whose codes createSession mails and
//! checks (`crate::service::credentials::check_email_auth_factor`).
//!
//! Codes are made and checked by [`crate::service::email_tokens`]; messages go through
//! `state.mailer()` (logged when no SMTP server is configured). Authentication follows the
//! reference: app passwords may confirm an email; changing it, deleting the account and the
//! PLC code need a full session; taken-down accounts are refused except for the PLC code.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use atp_syntax::{AtIdentifier, Did};
use pds_store::{Account, EmailTokenPurpose};

use crate::api::admin::AdminAuth;
use crate::api::error::XrpcError;
use crate::api::extract::{XrpcJson, parse_param};
use crate::auth::{self, AccessAuth, Scope};
use crate::service::email_tokens::{self, issue_and_mail};
use crate::service::{account, account_delete};
use crate::state::AppState;

/// Longest new password (the reference's `NEW_PASSWORD_MAX_LENGTH`).
const NEW_PASSWORD_MAX_LENGTH: usize = 256;
/// Longest password checked (the reference's `OLD_PASSWORD_MAX_LENGTH`).
const OLD_PASSWORD_MAX_LENGTH: usize = 512;

/// How a taken-down account is treated by a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Takedown {
    Refuse,
    Allow,
}

/// The authenticated account, refusing app-password sessions when `full` and taken-down
/// accounts unless allowed.
async fn authed_account(
    state: &AppState,
    auth: &AccessAuth,
    full: bool,
    takedown: Takedown,
) -> Result<Account, XrpcError> {
    if full && auth.scope != Scope::Access {
        return Err(XrpcError::new(
            StatusCode::UNAUTHORIZED,
            "InvalidToken",
            "Bad token scope",
        ));
    }
    let account = state
        .store()
        .get_account(&auth.did)
        .await?
        .ok_or_else(|| XrpcError::invalid_request("account not found"))?;
    if takedown == Takedown::Refuse && account.takedown_ref.is_some() {
        return Err(XrpcError::account_takedown());
    }
    Ok(account)
}

fn email_of(account: &Account) -> Result<&str, XrpcError> {
    account
        .email
        .as_deref()
        .ok_or_else(|| XrpcError::invalid_request("account does not have an email address"))
}

/// The same syntax check as createAccount (one `@`, a dotted domain, no spaces).
fn check_email(email: &str) -> Result<(), XrpcError> {
    let ok = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !email.contains(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(XrpcError::invalid_request(
            "This email address is not supported, please use a different email.",
        ))
    }
}

/// Mails `body` to `to`; a mail failure is an internal error (as the reference).
async fn mail(state: &AppState, to: &str, subject: &str, body: String) -> Result<(), XrpcError> {
    state
        .mailer()
        .send(to, subject, &body)
        .await
        .map_err(XrpcError::internal)
}

/// `com.atproto.server.requestEmailConfirmation`.
pub async fn request_email_confirmation(
    State(state): State<AppState>,
    auth: AccessAuth,
) -> Result<(), XrpcError> {
    let account = authed_account(&state, &auth, false, Takedown::Refuse).await?;
    let to = email_of(&account)?.to_owned();
    issue_and_mail(&state, &account, &to, EmailTokenPurpose::ConfirmEmail).await
}

/// confirmEmail input.
#[derive(Debug, Deserialize)]
pub struct ConfirmEmailInput {
    email: String,
    token: String,
}

/// `com.atproto.server.confirmEmail`.
pub async fn confirm_email(
    State(state): State<AppState>,
    auth: AccessAuth,
    XrpcJson(input): XrpcJson<ConfirmEmailInput>,
) -> Result<(), XrpcError> {
    let account = authed_account(&state, &auth, false, Takedown::Refuse)
        .await
        .map_err(|e| {
            if e.error == "InvalidRequest" {
                XrpcError::invalid_request("user not found").named("AccountNotFound")
            } else {
                e
            }
        })?;
    let matches = account
        .email
        .as_deref()
        .is_some_and(|e| e.eq_ignore_ascii_case(input.email.trim()));
    if !matches {
        return Err(XrpcError::invalid_request("invalid email").named("InvalidEmail"));
    }
    email_tokens::consume(
        &state,
        &account.did,
        EmailTokenPurpose::ConfirmEmail,
        &input.token,
    )
    .await?;
    state
        .store()
        .confirm_email(&account.did, Utc::now())
        .await?;
    Ok(())
}

/// `com.atproto.server.requestEmailUpdate`: a code is needed (and mailed to the current
/// address) only when that address is confirmed.
pub async fn request_email_update(
    State(state): State<AppState>,
    auth: AccessAuth,
) -> Result<Json<Value>, XrpcError> {
    let account = authed_account(&state, &auth, true, Takedown::Refuse).await?;
    let to = email_of(&account)
        .map_err(|_| XrpcError::invalid_request("account not found"))?
        .to_owned();
    let token_required = account.email_confirmed_at.is_some();
    if token_required {
        issue_and_mail(&state, &account, &to, EmailTokenPurpose::UpdateEmail).await?;
    }
    Ok(Json(json!({ "tokenRequired": token_required })))
}

/// updateEmail input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateEmailInput {
    email: String,
    email_auth_factor: Option<bool>,
    token: Option<String>,
}

/// Sets `did`'s address (lower-cased, unconfirmed) and drops its codes, unless it is already
/// that address; `InvalidRequest` if another account has it.
async fn set_email(state: &AppState, account: &Account, email: &str) -> Result<(), XrpcError> {
    if account
        .email
        .as_deref()
        .is_some_and(|e| e.eq_ignore_ascii_case(email))
    {
        return Ok(());
    }
    let email = email.to_ascii_lowercase();
    state
        .store()
        .update_email(&account.did, &email)
        .await
        .map_err(|e| match e {
            pds_store::StoreError::EmailTaken { .. } => XrpcError::invalid_request(
                "This email address is already in use, please use a different email.",
            ),
            other => other.into(),
        })?;
    state.store().delete_all_email_tokens(&account.did).await?;
    Ok(())
}

/// `com.atproto.server.updateEmail`: needs the code from requestEmailUpdate when the current
/// address is confirmed. With the account's current address, `emailAuthFactor` only switches the
/// email sign-in factor (as the reference): on at once for a confirmed address; off in two steps,
/// since it removes a factor (without `token` an `update_email` code is mailed and the call fails
/// `TokenRequired`; with it the factor goes off). A new address turns the factor off.
pub async fn update_email(
    State(state): State<AppState>,
    auth: AccessAuth,
    XrpcJson(input): XrpcJson<UpdateEmailInput>,
) -> Result<(), XrpcError> {
    let account = authed_account(&state, &auth, true, Takedown::Refuse).await?;
    let email = input.email.trim();
    check_email(email)?;
    let same = account
        .email
        .as_deref()
        .is_some_and(|e| e.eq_ignore_ascii_case(email));
    match input.email_auth_factor {
        Some(true) if !same || account.email_confirmed_at.is_none() => {
            // A new address would turn the factor off again; refuse rather than ignore.
            return Err(XrpcError::invalid_request(
                "Please change and verify your email before enabling OTP",
            ));
        }
        Some(on) if same => {
            return switch_email_auth_factor(&state, &account, on, input.token.as_deref()).await;
        }
        _ => {}
    }
    if !same
        && let Some(other) = state.store().get_account_by_email(email).await?
        && other.did != account.did
    {
        return Err(XrpcError::invalid_request(
            "This email address is already in use, please use a different email.",
        ));
    }
    if account.email_confirmed_at.is_some() {
        let token = input.token.as_deref().ok_or_else(token_required)?;
        email_tokens::consume(&state, &account.did, EmailTokenPurpose::UpdateEmail, token).await?;
    }
    set_email(&state, &account, email).await
}

fn token_required() -> XrpcError {
    XrpcError::invalid_request("confirmation token required").named("TokenRequired")
}

/// Turns the email sign-in factor of `account` (whose current address the caller gave) on or
/// off; see [`update_email`].
async fn switch_email_auth_factor(
    state: &AppState,
    account: &Account,
    on: bool,
    token: Option<&str>,
) -> Result<(), XrpcError> {
    let email = email_of(account)?;
    if on {
        // Idempotent; the store re-checks address and confirmation in the same statement.
        let matched = state
            .store()
            .set_email_auth_factor(&account.did, email, Some(Utc::now()))
            .await?;
        if !matched {
            return Err(XrpcError::invalid_request(
                "A confirmed email address is required to enable email-based two-factor \
                 authentication",
            ));
        }
        return Ok(());
    }
    if account.email_auth_factor_at.is_none() {
        return Ok(());
    }
    let Some(token) = token.filter(|t| !t.trim().is_empty()) else {
        issue_and_mail(state, account, email, EmailTokenPurpose::UpdateEmail).await?;
        return Err(token_required());
    };
    email_tokens::consume(state, &account.did, EmailTokenPurpose::UpdateEmail, token).await?;
    state
        .store()
        .set_email_auth_factor(&account.did, email, None)
        .await?;
    Ok(())
}

/// requestPasswordReset input.
#[derive(Debug, Deserialize)]
pub struct RequestPasswordResetInput {
    email: String,
}

/// `com.atproto.server.requestPasswordReset`: answers the same whether or not an account has
/// that address.
pub async fn request_password_reset(
    State(state): State<AppState>,
    XrpcJson(input): XrpcJson<RequestPasswordResetInput>,
) -> Result<(), XrpcError> {
    let email = input.email.trim();
    let Some(account) = state.store().get_account_by_email(email).await? else {
        return Ok(());
    };
    let Some(to) = account.email.clone() else {
        return Ok(());
    };
    issue_and_mail(&state, &account, &to, EmailTokenPurpose::ResetPassword).await
}

/// resetPassword input.
#[derive(Debug, Deserialize)]
pub struct ResetPasswordInput {
    token: String,
    password: String,
}

/// `com.atproto.server.resetPassword`: sets the password and revokes every session (refresh
/// token) of the account, as the reference.
pub async fn reset_password(
    State(state): State<AppState>,
    XrpcJson(input): XrpcJson<ResetPasswordInput>,
) -> Result<(), XrpcError> {
    if input.password.len() > NEW_PASSWORD_MAX_LENGTH {
        return Err(XrpcError::invalid_request("Invalid password length."));
    }
    let did =
        email_tokens::consume_by_value(&state, EmailTokenPurpose::ResetPassword, &input.token)
            .await?;
    let password = input.password;
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(XrpcError::internal)??;
    state.store().set_password(&did, hash).await?;
    Ok(())
}

/// `com.atproto.server.requestAccountDelete`.
pub async fn request_account_delete(
    State(state): State<AppState>,
    auth: AccessAuth,
) -> Result<(), XrpcError> {
    let account = authed_account(&state, &auth, true, Takedown::Refuse).await?;
    let to = email_of(&account)?.to_owned();
    issue_and_mail(&state, &account, &to, EmailTokenPurpose::DeleteAccount).await
}

/// deleteAccount input.
#[derive(Debug, Deserialize)]
pub struct DeleteAccountInput {
    did: String,
    password: String,
    token: String,
}

/// `com.atproto.server.deleteAccount`: no session; the account password and the code from
/// requestAccountDelete.
pub async fn delete_account(
    State(state): State<AppState>,
    XrpcJson(input): XrpcJson<DeleteAccountInput>,
) -> Result<(), XrpcError> {
    let did: Did = parse_param("did", &input.did)?;
    let account = state
        .store()
        .get_account(&did)
        .await?
        .ok_or_else(|| XrpcError::invalid_request("account not found"))?;
    if input.password.len() > OLD_PASSWORD_MAX_LENGTH {
        return Err(XrpcError::invalid_request("Invalid password length."));
    }
    let hash = account.password_hash.clone();
    let password = input.password;
    let valid = tokio::task::spawn_blocking(move || {
        hash.is_some_and(|h| auth::verify_password(&password, &h))
    })
    .await
    .map_err(XrpcError::internal)?;
    if !valid {
        return Err(XrpcError::auth_required("Invalid did or password"));
    }
    email_tokens::consume(&state, &did, EmailTokenPurpose::DeleteAccount, &input.token).await?;
    account_delete::delete_account(&state, &did).await?;
    Ok(())
}

/// `com.atproto.identity.requestPlcOperationSignature`: mails the code `signPlcOperation`
/// needs. Full sessions only; deactivated and taken-down accounts may ask (to move away).
pub async fn request_plc_operation_signature(
    State(state): State<AppState>,
    auth: AccessAuth,
) -> Result<(), XrpcError> {
    let account = authed_account(&state, &auth, true, Takedown::Allow).await?;
    let to = email_of(&account)?.to_owned();
    issue_and_mail(&state, &account, &to, EmailTokenPurpose::PlcOperation).await
}

/// admin.sendEmail input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendEmailInput {
    recipient_did: String,
    content: String,
    subject: Option<String>,
    sender_did: String,
    /// For moderators' records; not part of the message.
    #[allow(dead_code)]
    comment: Option<String>,
}

/// `com.atproto.admin.sendEmail` (administrator): `content` is sent as plain text.
pub async fn admin_send_email(
    State(state): State<AppState>,
    _admin: AdminAuth,
    XrpcJson(input): XrpcJson<SendEmailInput>,
) -> Result<Json<Value>, XrpcError> {
    let recipient: Did = parse_param("recipientDid", &input.recipient_did)?;
    let _sender: Did = parse_param("senderDid", &input.sender_did)?;
    let account = state
        .store()
        .get_account(&recipient)
        .await?
        .ok_or_else(|| XrpcError::invalid_request("Recipient not found"))?;
    let to = email_of(&account)?;
    let subject = input
        .subject
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("Message via your PDS");
    mail(&state, to, subject, input.content).await?;
    Ok(Json(json!({ "sent": true })))
}

/// admin.updateAccountEmail input.
#[derive(Debug, Deserialize)]
pub struct UpdateAccountEmailInput {
    account: String,
    email: String,
}

/// `com.atproto.admin.updateAccountEmail` (administrator): no code; the new address is
/// unconfirmed and the account's codes are dropped.
pub async fn admin_update_account_email(
    State(state): State<AppState>,
    _admin: AdminAuth,
    XrpcJson(input): XrpcJson<UpdateAccountEmailInput>,
) -> Result<(), XrpcError> {
    let id: AtIdentifier = parse_param("account", &input.account)?;
    let account = account::find_account(&state, id.as_ref())
        .await?
        .ok_or_else(|| {
            XrpcError::invalid_request(format!("Account does not exist: {}", input.account))
        })?;
    let email = input.email.trim();
    check_email(email)?;
    set_email(&state, &account, email).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_syntax() {
        for ok in ["a@b.co", "first.last+tag@example.com"] {
            assert!(check_email(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "a", "a@b", "@b.co", "a@b.co.", "a@.b.co", "a b@c.de", "a@b@c.de",
        ] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
    }
}
