//! `com.atproto.server.getServiceAuth`: a service-auth JWT signed with the account's signing
//! key, for the caller to present to another service.
//!
//! Limits, as the reference PDS: `exp` (UNIX seconds) must not be in the past and at most one
//! hour ahead, and at most one minute ahead for a token bound to no method (`BadExpiration`);
//! an `exp` of 0 or none means the default, one minute. No token is minted for a protected
//! method (account management), and an ordinary app password gets none for a privileged method
//! (`service::method_policy`). Every token has a fresh random `jti`.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use atp_identity::service_auth::Issuer;
use atp_syntax::Nsid;

use crate::api::error::XrpcError;
use crate::api::extract::{XrpcQuery, parse_param};
use crate::auth::{AccessAuth, Scope};
use crate::service::method_policy;
use crate::service::service_auth::{MintError, mint};
use crate::state::AppState;

/// The longest lifetime a token may be requested with, in milliseconds.
pub const MAX_LIFETIME_MS: i64 = 60 * 60 * 1000;
/// The longest lifetime of a token bound to no method, in milliseconds.
pub const MAX_UNBOUND_LIFETIME_MS: i64 = 60 * 1000;
/// The default lifetime, in seconds.
pub const DEFAULT_LIFETIME_SECS: i64 = 60;
/// Longest `aud` accepted (the lexicon's `maxLength`).
pub const MAX_AUD_LEN: usize = 2048;

/// getServiceAuth parameters.
#[derive(Debug, Deserialize)]
pub struct GetServiceAuthParams {
    aud: String,
    exp: Option<i64>,
    lxm: Option<String>,
}

fn bad_expiration(message: &str) -> XrpcError {
    XrpcError::invalid_request(message).named("BadExpiration")
}

/// Checks a requested expiry (UNIX seconds) against the clock (`now_ms`, UNIX milliseconds).
pub fn check_expiry(exp: i64, bound: bool, now_ms: i64) -> Result<(), XrpcError> {
    let diff = exp.saturating_mul(1000).saturating_sub(now_ms);
    if diff < 0 {
        Err(bad_expiration("expiration is in past"))
    } else if diff > MAX_LIFETIME_MS {
        Err(bad_expiration(
            "cannot request a token with an expiration more than an hour in the future",
        ))
    } else if !bound && diff > MAX_UNBOUND_LIFETIME_MS {
        Err(bad_expiration(
            "cannot request a method-less token with an expiration more than a minute in the future",
        ))
    } else {
        Ok(())
    }
}

/// Checks that `scope` may obtain a token bound to `lxm`.
pub fn check_method(lxm: &Nsid, scope: Scope) -> Result<(), XrpcError> {
    if method_policy::is_protected(lxm.as_str()) {
        return Err(XrpcError::invalid_request(format!(
            "cannot request a service auth token for the following protected method: {lxm}"
        )));
    }
    let privileged = matches!(scope, Scope::Access | Scope::AppPassPrivileged);
    if !privileged && method_policy::is_privileged(lxm.as_str()) {
        return Err(XrpcError::invalid_request(format!(
            "insufficient access to request a service auth token for the following method: {lxm}"
        )));
    }
    Ok(())
}

/// `com.atproto.server.getServiceAuth`.
pub async fn get_service_auth(
    State(state): State<AppState>,
    auth: AccessAuth,
    XrpcQuery(p): XrpcQuery<GetServiceAuthParams>,
) -> Result<Json<Value>, XrpcError> {
    if p.aud.len() > MAX_AUD_LEN || Issuer::parse(&p.aud).is_none() {
        return Err(XrpcError::invalid_request(
            "Invalid aud: expected a DID or a did#service reference",
        ));
    }
    let lxm: Option<Nsid> = p
        .lxm
        .as_deref()
        .map(|s| parse_param("lxm", s))
        .transpose()?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let now = now_ms.div_euclid(1000);
    let exp = match p.exp.filter(|&e| e != 0) {
        Some(exp) => {
            check_expiry(exp, lxm.is_some(), now_ms)?;
            exp
        }
        None => (now_ms + DEFAULT_LIFETIME_SECS * 1000).div_euclid(1000),
    };
    if let Some(lxm) = &lxm {
        check_method(lxm, auth.scope)?;
    }
    let keys = state.writer().keys().clone();
    let did = auth.did.clone();
    let key = tokio::task::spawn_blocking(move || keys.load(&did))
        .await
        .map_err(XrpcError::internal)?
        .map_err(|e| XrpcError::internal(format!("signing key of {}: {e}", auth.did)))?;
    let token = mint(&key, &auth.did, &p.aud, lxm.as_ref(), exp, now).map_err(|e| match e {
        MintError::BadExpiry { .. } => bad_expiration("expiration is in past"),
        other => XrpcError::internal(other),
    })?;
    Ok(Json(json!({ "token": token })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_limits() {
        let now_ms = 1_700_000_000_500;
        let name = |r: Result<(), XrpcError>| r.err().map(|e| (e.error, e.message));
        assert_eq!(name(check_expiry(1_700_000_001, false, now_ms)), None);
        assert_eq!(name(check_expiry(1_700_000_060, false, now_ms)), None);
        let past = name(check_expiry(1_700_000_000, true, now_ms)).unwrap();
        assert_eq!(past, ("BadExpiration", "expiration is in past".into()));
        let (e, m) = name(check_expiry(1_700_000_061, false, now_ms)).unwrap();
        assert_eq!(e, "BadExpiration");
        assert!(m.contains("method-less"), "{m}");
        assert_eq!(name(check_expiry(1_700_000_061, true, now_ms)), None);
        assert_eq!(name(check_expiry(1_700_003_600, true, now_ms)), None);
        let (e, m) = name(check_expiry(1_700_003_601, true, now_ms)).unwrap();
        assert_eq!(e, "BadExpiration");
        assert!(m.contains("more than an hour"), "{m}");
        assert!(check_expiry(i64::MAX, true, now_ms).is_err());
        assert!(check_expiry(i64::MIN, true, now_ms).is_err());
    }

    #[test]
    fn method_rules() {
        let nsid = |s: &str| s.parse::<Nsid>().unwrap();
        let protected = nsid("com.atproto.server.createAppPassword");
        for scope in [Scope::Access, Scope::AppPassPrivileged, Scope::AppPass] {
            let e = check_method(&protected, scope).unwrap_err();
            assert_eq!(e.error, "InvalidRequest");
            assert!(e.message.contains("protected method"), "{}", e.message);
        }
        let chat = nsid("chat.bsky.convo.getMessages");
        assert!(check_method(&chat, Scope::Access).is_ok());
        assert!(check_method(&chat, Scope::AppPassPrivileged).is_ok());
        let e = check_method(&chat, Scope::AppPass).unwrap_err();
        assert!(e.message.contains("insufficient access"), "{}", e.message);
        assert!(check_method(&nsid("app.bsky.feed.getTimeline"), Scope::AppPass).is_ok());
    }
}
