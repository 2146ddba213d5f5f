//! One-time email tokens, as the reference PDS makes them: ten characters of upper-case base32
//! shown as `XXXXX-XXXXX` (50 random bits), one live token per account and purpose (a new
//! request replaces the old one), valid for [`TOKEN_TTL`], used once.
//!
//! Input is trimmed and upper-cased first (the reference upper-cases it too). Checks compare the
//! stored token in constant time, then delete it only if it is still the same token, so two
//! concurrent requests cannot both use it.

use std::time::Duration;

use atp_syntax::Did;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use data_encoding::BASE32_NOPAD;
use pds_store::{Account, EmailTokenPurpose};
use sha2::{Digest, Sha256};

use crate::api::error::XrpcError;
use crate::service::mailer::code_message;
use crate::state::AppState;

/// How long a token stays valid (the reference's 15 minutes).
pub const TOKEN_TTL: Duration = Duration::from_secs(15 * 60);

/// A fresh token: `XXXXX-XXXXX` over the base32 alphabet `A-Z2-7`.
pub fn generate() -> String {
    let mut bytes = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    let encoded = BASE32_NOPAD.encode(&bytes);
    let (head, tail) = encoded.split_at(5);
    format!("{head}-{}", &tail[..5])
}

/// The token as stored: trimmed and upper-cased.
pub fn normalize(token: &str) -> String {
    token.trim().to_ascii_uppercase()
}

/// Whether a token requested at `requested_at` has expired at `now`.
pub fn is_expired(requested_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    let ttl = chrono::Duration::from_std(TOKEN_TTL).unwrap_or(chrono::Duration::MAX);
    now.signed_duration_since(requested_at) >= ttl
}

/// Compares the SHA-256 digests of `a` and `b` without an early exit.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let (da, db) = (Sha256::digest(a), Sha256::digest(b));
    da.iter()
        .zip(db.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

fn invalid() -> XrpcError {
    XrpcError::new(StatusCode::BAD_REQUEST, "InvalidToken", "Token is invalid")
}

fn expired() -> XrpcError {
    XrpcError::new(StatusCode::BAD_REQUEST, "ExpiredToken", "Token is expired")
}

/// Issues a new token for `did` and `purpose` (replacing any live one) and returns it.
pub async fn issue(
    state: &AppState,
    did: &Did,
    purpose: EmailTokenPurpose,
) -> Result<String, XrpcError> {
    let token = generate();
    state
        .store()
        .set_email_token(did, purpose, token.clone(), Utc::now())
        .await?;
    Ok(token)
}

/// Issues a code for `purpose` and mails it to `to` (the reference's subject for it, our own
/// plain-text body); a mail failure is an internal error (as the reference).
pub async fn issue_and_mail(
    state: &AppState,
    account: &Account,
    to: &str,
    purpose: EmailTokenPurpose,
) -> Result<(), XrpcError> {
    let token = issue(state, &account.did, purpose).await?;
    let minutes = TOKEN_TTL.as_secs() / 60;
    let (subject, body) = code_message(purpose, account.handle.as_str(), &token, minutes);
    state
        .mailer()
        .send(to, subject, &body)
        .await
        .map_err(XrpcError::internal)
}

/// Uses `did`'s token for `purpose`: `InvalidToken` if `token` is not the live one (or was
/// used meanwhile), `ExpiredToken` if it is older than [`TOKEN_TTL`] (it then stays until
/// replaced or swept).
pub async fn consume(
    state: &AppState,
    did: &Did,
    purpose: EmailTokenPurpose,
    token: &str,
) -> Result<(), XrpcError> {
    let given = normalize(token);
    let stored = state
        .store()
        .get_email_token(did, purpose)
        .await?
        .ok_or_else(invalid)?;
    if !constant_time_eq(stored.token.as_bytes(), given.as_bytes()) {
        return Err(invalid());
    }
    if is_expired(stored.requested_at, Utc::now()) {
        return Err(expired());
    }
    if !state
        .store()
        .take_email_token(did, purpose, &stored.token)
        .await?
    {
        return Err(invalid());
    }
    Ok(())
}

/// Uses a token known only by its value (resetPassword); returns the account it belonged to.
pub async fn consume_by_value(
    state: &AppState,
    purpose: EmailTokenPurpose,
    token: &str,
) -> Result<Did, XrpcError> {
    let given = normalize(token);
    let (did, requested_at) = state
        .store()
        .find_email_token(purpose, &given)
        .await?
        .ok_or_else(invalid)?;
    if is_expired(requested_at, Utc::now()) {
        return Err(expired());
    }
    if !state
        .store()
        .take_email_token(&did, purpose, &given)
        .await?
    {
        return Err(invalid());
    }
    Ok(did)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_look_like_the_reference() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let t = generate();
            assert_eq!(t.len(), 11, "{t}");
            assert_eq!(&t[5..6], "-", "{t}");
            assert!(
                t.chars()
                    .all(|c| c == '-' || c.is_ascii_uppercase() || ('2'..='7').contains(&c)),
                "{t}"
            );
            assert_eq!(normalize(&format!("  {} ", t.to_ascii_lowercase())), t);
            seen.insert(t);
        }
        assert!(seen.len() > 190, "tokens repeat: {}", seen.len());
    }

    #[test]
    fn expiry_is_fifteen_minutes() {
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert!(!is_expired(t0, t0));
        assert!(!is_expired(t0, t0 + chrono::Duration::seconds(899)));
        assert!(is_expired(t0, t0 + chrono::Duration::seconds(900)));
        assert!(constant_time_eq(b"AAAAA-BBBBB", b"AAAAA-BBBBB"));
        assert!(!constant_time_eq(b"AAAAA-BBBBB", b"AAAAA-BBBBC"));
        assert!(!constant_time_eq(b"AAAAA", b"AAAAA-BBBBB"));
    }
}
