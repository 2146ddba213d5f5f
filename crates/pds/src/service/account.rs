//! Accounts and sessions: createAccount (key, `did:plc` genesis, genesis commit), login, token
//! refresh and logout.

use std::collections::BTreeMap;

use atp_crypto::{Curve, Keypair};
use atp_data::Value;
use atp_identity::plc::{PlcOp, UnsignedOp};
use atp_syntax::{Did, Handle};
use chrono::Utc;
use pds_store::{Account, EventKind, NewAccount, NewEvent, RefreshToken, RepoCommit, StoreError};

use crate::auth::{self, REFRESH_TTL_SECS, Scope};
use crate::service::writer::commit_event_body;
use crate::state::{AppState, random_hex};

/// Shortest and longest first label of a handle under a service domain (as the reference).
const HANDLE_LABEL_LEN: std::ops::RangeInclusive<usize> = 3..=18;

/// Why an account or session call failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The handle is malformed or not under a service domain.
    #[error("{0}")]
    InvalidHandle(String),
    /// The invite code is missing or unusable.
    #[error("{0}")]
    InvalidInviteCode(String),
    /// Other bad input.
    #[error("{0}")]
    InvalidRequest(String),
    /// Wrong identifier or password.
    #[error("invalid identifier or password")]
    AuthFailed,
    /// The refresh token was revoked or expired.
    #[error("token revoked")]
    ExpiredToken,
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Something on our side failed.
    #[error("{0}")]
    Internal(String),
}

/// createAccount's input.
#[derive(Debug, Clone)]
pub struct NewAccountRequest {
    /// Requested handle.
    pub handle: String,
    /// Email address.
    pub email: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// Invite code.
    pub invite_code: Option<String>,
}

/// A session: the account and its tokens.
#[derive(Debug, Clone)]
pub struct Session {
    /// The account.
    pub did: Did,
    /// Its handle.
    pub handle: Handle,
    /// Its email.
    pub email: Option<String>,
    /// Access token.
    pub access_jwt: String,
    /// Refresh token.
    pub refresh_jwt: String,
    /// Why the account is not active (`deactivated`, `takendown`); `None`: active.
    pub status: Option<&'static str>,
    /// Whether its email address is confirmed.
    pub email_confirmed: bool,
    /// Whether a password login also needs a code mailed to it (the email sign-in factor).
    pub email_auth_factor: bool,
}

impl Session {
    /// This session with the account's email state (confirmation, sign-in factor).
    fn with_email_state(self, account: &Account) -> Session {
        Session {
            email_confirmed: account.email_confirmed_at.is_some(),
            email_auth_factor: account.email_auth_factor_at.is_some(),
            ..self
        }
    }
}

/// A password that matched: the account, and which password it was.
#[derive(Debug, Clone)]
pub struct Login {
    /// The account.
    pub account: Account,
    /// The session's scope (`Access` for the account password).
    pub scope: Scope,
    /// The app password's name, if it was one.
    pub app_password_name: Option<String>,
}

/// Why `account` is not active, as the lexicons name it; `None`: active.
pub fn inactive_status(account: &Account) -> Option<&'static str> {
    if account.takedown_ref.is_some() {
        Some("takendown")
    } else if account.deactivated_at.is_some() {
        Some("deactivated")
    } else {
        None
    }
}

/// Checks a requested handle against the service domains; returns it lower-cased.
pub fn check_handle(handle: &str, domains: &[String]) -> Result<Handle, AccountError> {
    let normalized = handle.trim().to_ascii_lowercase();
    let parsed: Handle = normalized
        .parse()
        .map_err(|e| AccountError::InvalidHandle(format!("Invalid handle: {e}")))?;
    let Some(front) = domains
        .iter()
        .find_map(|d| normalized.strip_suffix(d.as_str()))
    else {
        return Err(AccountError::InvalidHandle(format!(
            "Not a supported handle domain (supported: {})",
            domains.join(", ")
        )));
    };
    if front.contains('.') {
        return Err(AccountError::InvalidHandle(
            "Invalid characters in handle".into(),
        ));
    }
    if !HANDLE_LABEL_LEN.contains(&front.len()) {
        return Err(AccountError::InvalidHandle(format!(
            "Handle must be {} to {} characters before the domain",
            HANDLE_LABEL_LEN.start(),
            HANDLE_LABEL_LEN.end()
        )));
    }
    Ok(parsed)
}

pub(crate) fn check_email(email: &str) -> Result<(), AccountError> {
    let ok = email
        .split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !email.contains(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(AccountError::InvalidRequest(
            "This email address is not supported, please use a different email.".into(),
        ))
    }
}

/// An event whose body is the map `fields` (without `seq` and `time`).
pub(crate) fn event(kind: EventKind, fields: Vec<(&str, Value)>) -> NewEvent {
    let map: BTreeMap<String, Value> = fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    NewEvent {
        kind,
        body: atp_data::cbor::to_vec(&Value::Map(map)),
    }
}

pub(crate) async fn hash_blocking(password: String) -> Result<String, AccountError> {
    tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|e| AccountError::Internal(e.to_string()))?
        .map_err(|e| AccountError::Internal(e.message))
}

/// Refuses what the store would refuse, before the DID is registered with the PLC directory.
pub(crate) async fn precheck(
    state: &AppState,
    handle: &Handle,
    email: &str,
    invite_code: Option<&str>,
) -> Result<(), AccountError> {
    let store = state.store();
    if store.get_account_by_handle(handle).await?.is_some() {
        return Err(StoreError::HandleTaken {
            handle: handle.to_string(),
        }
        .into());
    }
    if store.get_account_by_email(email).await?.is_some() {
        return Err(StoreError::EmailTaken {
            email: email.to_owned(),
        }
        .into());
    }
    if let Some(code) = invite_code {
        let available = store
            .get_invite_code(code)
            .await?
            .is_some_and(|c| c.is_available());
        if !available {
            return Err(AccountError::InvalidInviteCode(
                "Provided invite code not available".into(),
            ));
        }
    }
    Ok(())
}

/// Creates an account (see the module docs) and logs it in.
pub async fn create_account(
    state: &AppState,
    req: NewAccountRequest,
) -> Result<Session, AccountError> {
    let config = state.config();
    let handle = check_handle(&req.handle, &config.service_handle_domains)?;
    let email = req
        .email
        .ok_or_else(|| AccountError::InvalidRequest("Email is required".into()))?;
    check_email(&email)?;
    let password = req
        .password
        .ok_or_else(|| AccountError::InvalidRequest("Password is required".into()))?;
    if config.invite_required && req.invite_code.is_none() {
        return Err(AccountError::InvalidInviteCode(
            "No invite code provided".into(),
        ));
    }
    precheck(state, &handle, &email, req.invite_code.as_deref()).await?;
    let store = state.store();
    let password_hash = hash_blocking(password).await?;

    let key = Keypair::generate(Curve::K256);
    let rotation = &state.secrets().plc_rotation_key;
    let op = PlcOp::atproto(
        &key.public_key(),
        &handle,
        &config.public_url(),
        vec![rotation.public_key().did_key()],
        None,
    );
    let signed = UnsignedOp::Operation(op)
        .sign(rotation)
        .map_err(|e| AccountError::Internal(format!("signing the PLC operation: {e}")))?;
    let did = signed
        .did()
        .map_err(|e| AccountError::Internal(format!("deriving the DID: {e}")))?;
    state
        .plc()
        .submit(&did, &signed)
        .await
        .map_err(|e| AccountError::Internal(e.to_string()))?;
    state
        .writer()
        .keys()
        .save(&did, &key)
        .map_err(|e| AccountError::Internal(format!("saving the signing key: {e}")))?;

    let tid = state.writer().next_tid();
    let genesis = atp_repo::format_genesis(&did, Vec::new(), &key, &tid)
        .map_err(|e| AccountError::Internal(e.to_string()))?;
    let commit_event = NewEvent {
        kind: EventKind::Commit,
        body: commit_event_body(&did, &genesis)
            .map_err(|e| AccountError::Internal(e.to_string()))?,
    };
    let events = vec![
        event(
            EventKind::Identity,
            vec![
                ("did", Value::from(did.as_str())),
                ("handle", Value::from(handle.as_str())),
            ],
        ),
        event(
            EventKind::Account,
            vec![
                ("did", Value::from(did.as_str())),
                ("active", Value::Bool(true)),
            ],
        ),
        commit_event,
    ];
    let account = NewAccount {
        did: did.clone(),
        handle: handle.clone(),
        email: Some(email.clone()),
        password_hash: Some(password_hash),
        invite_code: req.invite_code,
        deactivated: false,
    };
    store
        .create_account(account, RepoCommit::new(genesis), events, Utc::now())
        .await?;
    start_session(state, did, handle, Some(email), Scope::Access, None).await
}

/// Stores a new refresh token and signs the token pair.
pub(crate) async fn start_session(
    state: &AppState,
    did: Did,
    handle: Handle,
    email: Option<String>,
    scope: Scope,
    app_password_name: Option<String>,
) -> Result<Session, AccountError> {
    let now = Utc::now();
    let jti = random_hex();
    state
        .store()
        .create_refresh_token(RefreshToken {
            id: jti.clone(),
            did: did.clone(),
            app_password_name,
            expires_at: now + chrono::Duration::seconds(REFRESH_TTL_SECS),
            next_id: None,
        })
        .await?;
    let (access_jwt, refresh_jwt) = auth::session_tokens(
        state,
        did.as_str(),
        scope,
        &jti,
        now.timestamp(),
        now.timestamp() + REFRESH_TTL_SECS,
    );
    Ok(Session {
        did,
        handle,
        email,
        access_jwt,
        refresh_jwt,
        status: None,
        email_confirmed: false,
        email_auth_factor: false,
    })
}

/// The account named by a handle, email or DID.
pub async fn find_account(
    state: &AppState,
    identifier: &str,
) -> Result<Option<Account>, AccountError> {
    let store = state.store();
    let id = identifier.trim();
    if id.starts_with("did:") {
        return match id.parse::<Did>() {
            Ok(did) => Ok(store.get_account(&did).await?),
            Err(_) => Ok(None),
        };
    }
    if id.contains('@') {
        return Ok(store.get_account_by_email(id).await?);
    }
    match id.to_ascii_lowercase().parse::<Handle>() {
        Ok(handle) => Ok(store.get_account_by_handle(&handle).await?),
        Err(_) => Ok(None),
    }
}

/// createSession's first step: the account password or an app password. The caller checks the
/// second factor, if any, before [`start_login_session`].
pub async fn check_login(
    state: &AppState,
    identifier: &str,
    password: String,
) -> Result<Login, AccountError> {
    let account = find_account(state, identifier)
        .await?
        .ok_or(AccountError::AuthFailed)?;
    let main_hash = account.password_hash.clone();
    let app_passwords = state.store().list_app_passwords(&account.did).await?;
    let matched = tokio::task::spawn_blocking(move || {
        if main_hash
            .as_deref()
            .is_some_and(|h| auth::verify_password(&password, h))
        {
            return Some((Scope::Access, None));
        }
        app_passwords
            .into_iter()
            .find(|a| auth::verify_password(&password, &a.password_hash))
            .map(|a| {
                let scope = if a.privileged {
                    Scope::AppPassPrivileged
                } else {
                    Scope::AppPass
                };
                (scope, Some(a.name))
            })
    })
    .await
    .map_err(|e| AccountError::Internal(e.to_string()))?;
    let (scope, app_password_name) = matched.ok_or(AccountError::AuthFailed)?;
    Ok(Login {
        account,
        scope,
        app_password_name,
    })
}

/// createSession's last step: a session for a checked login.
pub async fn start_login_session(state: &AppState, login: Login) -> Result<Session, AccountError> {
    let Login {
        account,
        scope,
        app_password_name,
    } = login;
    let status = inactive_status(&account);
    let session = start_session(
        state,
        account.did.clone(),
        account.handle.clone(),
        account.email.clone(),
        scope,
        app_password_name,
    )
    .await?;
    Ok(Session { status, ..session }.with_email_state(&account))
}

/// refreshSession: rotates the refresh token `jti`.
pub async fn refresh_session(state: &AppState, jti: &str) -> Result<Session, AccountError> {
    let now = Utc::now();
    let rotation = state
        .store()
        .rotate_refresh_token(
            jti,
            random_hex(),
            now + chrono::Duration::seconds(REFRESH_TTL_SECS),
            now,
        )
        .await?
        .ok_or(AccountError::ExpiredToken)?;
    let account = state
        .store()
        .get_account(&rotation.did)
        .await?
        .ok_or(AccountError::ExpiredToken)?;
    let scope = match &rotation.app_password_name {
        None => Scope::Access,
        Some(name) => {
            let privileged = state
                .store()
                .list_app_passwords(&rotation.did)
                .await?
                .into_iter()
                .any(|a| &a.name == name && a.privileged);
            if privileged {
                Scope::AppPassPrivileged
            } else {
                Scope::AppPass
            }
        }
    };
    let (access_jwt, refresh_jwt) = auth::session_tokens(
        state,
        rotation.did.as_str(),
        scope,
        &rotation.next_id,
        now.timestamp(),
        rotation.next_expires_at.timestamp(),
    );
    let status = inactive_status(&account);
    let session = Session {
        did: account.did.clone(),
        handle: account.handle.clone(),
        email: account.email.clone(),
        access_jwt,
        refresh_jwt,
        status,
        email_confirmed: false,
        email_auth_factor: false,
    };
    Ok(session.with_email_state(&account))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_must_fit_a_service_domain() {
        let domains = vec![".test".to_owned()];
        assert_eq!(
            check_handle("Alice.TEST", &domains).unwrap().as_str(),
            "alice.test"
        );
        for bad in [
            "al.test",
            "alice.example.com",
            "a.b.test",
            "averyveryverylonghandle.test",
            "bad_.test",
        ] {
            assert!(check_handle(bad, &domains).is_err(), "{bad}");
        }
    }
}
