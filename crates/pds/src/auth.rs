//! Session tokens (HS256 JWTs like the reference PDS's), password hashing, and the auth
//! extractors.
//!
//! Access tokens: header `typ: at+jwt`, claims `scope` (`com.atproto.access`,
//! `com.atproto.appPass` or `com.atproto.appPassPrivileged`), `sub`, `aud` (the service DID),
//! `iat`, `exp` (2 hours). Refresh tokens: `typ: refresh+jwt`, scope `com.atproto.refresh`, a
//! `jti` stored in the database and rotated on use, 90 days.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use data_encoding::BASE64URL_NOPAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::api::error::XrpcError;
use crate::state::AppState;

/// Lifetime of an access token.
pub const ACCESS_TTL_SECS: i64 = 2 * 60 * 60;
/// Lifetime of a refresh token.
pub const REFRESH_TTL_SECS: i64 = 90 * 24 * 60 * 60;

/// What an access token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A full session.
    Access,
    /// An app password session.
    AppPass,
    /// A privileged app password session.
    AppPassPrivileged,
    /// A refresh token.
    Refresh,
}

impl Scope {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Access => "com.atproto.access",
            Scope::AppPass => "com.atproto.appPass",
            Scope::AppPassPrivileged => "com.atproto.appPassPrivileged",
            Scope::Refresh => "com.atproto.refresh",
        }
    }

    fn parse(s: &str) -> Option<Scope> {
        [
            Scope::Access,
            Scope::AppPass,
            Scope::AppPassPrivileged,
            Scope::Refresh,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// The claims of our session tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Scope.
    pub scope: String,
    /// The account DID.
    pub sub: String,
    /// The service DID.
    pub aud: String,
    /// Issued at (seconds).
    pub iat: i64,
    /// Expires at (seconds).
    pub exp: i64,
    /// Token id (refresh tokens).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub jti: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    typ: String,
}

fn mac(secret: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length")
}

/// Signs `claims` as an HS256 JWT with header type `typ`.
pub fn sign_jwt(secret: &[u8], typ: &str, claims: &Claims) -> String {
    let header = serde_json::json!({"typ": typ, "alg": "HS256"});
    let payload = serde_json::to_vec(claims).expect("claims always serialize");
    let signing_input = format!(
        "{}.{}",
        BASE64URL_NOPAD.encode(header.to_string().as_bytes()),
        BASE64URL_NOPAD.encode(&payload)
    );
    let mut m = mac(secret);
    m.update(signing_input.as_bytes());
    let sig = m.finalize().into_bytes();
    format!("{signing_input}.{}", BASE64URL_NOPAD.encode(&sig))
}

/// Why [`verify_jwt`] refused a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtRefusal {
    /// Malformed, wrongly signed, or of another type.
    Invalid,
    /// Well signed but past its expiry (clients refresh their session on this one).
    Expired,
}

/// Verifies an HS256 JWT of header type `typ` (constant-time signature check) and its expiry.
/// Expiry is judged only once the signature holds, so a forged token is never called expired.
pub fn verify_jwt(secret: &[u8], typ: &str, token: &str, now: i64) -> Result<Claims, JwtRefusal> {
    let claims = verify_jwt_signature(secret, typ, token).ok_or(JwtRefusal::Invalid)?;
    if claims.exp > now {
        Ok(claims)
    } else {
        Err(JwtRefusal::Expired)
    }
}

fn verify_jwt_signature(secret: &[u8], typ: &str, token: &str) -> Option<Claims> {
    let mut parts = token.split('.');
    let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let sig = BASE64URL_NOPAD.decode(s.as_bytes()).ok()?;
    let mut m = mac(secret);
    m.update(h.as_bytes());
    m.update(b".");
    m.update(p.as_bytes());
    m.verify_slice(&sig).ok()?;
    let header: Header =
        serde_json::from_slice(&BASE64URL_NOPAD.decode(h.as_bytes()).ok()?).ok()?;
    if header.alg != "HS256" || header.typ != typ {
        return None;
    }
    serde_json::from_slice(&BASE64URL_NOPAD.decode(p.as_bytes()).ok()?).ok()
}

/// An access + refresh token pair (refresh token `jti`, expiring at `refresh_exp`).
pub fn session_tokens(
    state: &AppState,
    did: &str,
    scope: Scope,
    jti: &str,
    now: i64,
    refresh_exp: i64,
) -> (String, String) {
    let secret = state.secrets().jwt_secret.as_bytes();
    let aud = state.config().service_did();
    let access = Claims {
        scope: scope.as_str().to_owned(),
        sub: did.to_owned(),
        aud: aud.clone(),
        iat: now,
        exp: now + ACCESS_TTL_SECS,
        jti: None,
    };
    let refresh = Claims {
        scope: Scope::Refresh.as_str().to_owned(),
        sub: did.to_owned(),
        aud,
        iat: now,
        exp: refresh_exp,
        jti: Some(jti.to_owned()),
    };
    (
        sign_jwt(secret, "at+jwt", &access),
        sign_jwt(secret, "refresh+jwt", &refresh),
    )
}

/// Hashes a password with argon2id (blocking; run it on the blocking pool).
pub fn hash_password(password: &str) -> Result<String, XrpcError> {
    let salt = SaltString::generate(&mut rand_core::OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| XrpcError::internal(format!("password hashing failed: {e}")))
}

/// Checks a password against an argon2 hash (constant time inside argon2; blocking).
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

fn bearer(parts: &Parts) -> Result<&str, XrpcError> {
    parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| XrpcError::auth_required("Authentication Required"))
}

fn check(state: &AppState, typ: &str, parts: &Parts) -> Result<Claims, XrpcError> {
    let token = bearer(parts)?;
    let now = chrono::Utc::now().timestamp();
    // As the reference: 400 `ExpiredToken` for an expired token (the official clients refresh
    // their session on that name or a 401), 400 `InvalidToken` for anything else.
    let claims =
        verify_jwt(state.secrets().jwt_secret.as_bytes(), typ, token, now).map_err(|refusal| {
            match refusal {
                JwtRefusal::Expired => {
                    XrpcError::invalid_token("Token has expired").named("ExpiredToken")
                }
                JwtRefusal::Invalid => XrpcError::invalid_token("Token could not be verified"),
            }
        })?;
    if claims.aud != state.config().service_did() {
        return Err(XrpcError::invalid_token("Token has the wrong audience"));
    }
    Ok(claims)
}

/// A request authenticated with an access token.
#[derive(Debug, Clone)]
pub struct AccessAuth {
    /// The account.
    pub did: atp_syntax::Did,
    /// The token's scope.
    pub scope: Scope,
}

impl FromRequestParts<AppState> for AccessAuth {
    type Rejection = XrpcError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, XrpcError> {
        let claims = check(state, "at+jwt", parts)?;
        let scope = Scope::parse(&claims.scope)
            .filter(|s| *s != Scope::Refresh)
            .ok_or_else(|| XrpcError::invalid_token("Bad token scope"))?;
        let did = claims
            .sub
            .parse()
            .map_err(|_| XrpcError::invalid_token("Bad token subject"))?;
        Ok(AccessAuth { did, scope })
    }
}

impl AccessAuth {
    /// The caller's account for a method with the reference's `checkTakedown`: an access token
    /// that is still valid does not let a taken-down account write (`401 AccountTakedown`), nor
    /// a deleted one (`403 AccountNotFound`).
    pub async fn check_takedown(&self, state: &AppState) -> Result<pds_store::Account, XrpcError> {
        let account = state.store().get_account(&self.did).await?.ok_or_else(|| {
            XrpcError::new(
                axum::http::StatusCode::FORBIDDEN,
                "AccountNotFound",
                "Account not found",
            )
        })?;
        if account.takedown_ref.is_some() {
            return Err(XrpcError::account_takedown());
        }
        Ok(account)
    }
}

/// A request authenticated with a refresh token.
#[derive(Debug, Clone)]
pub struct RefreshAuth {
    /// The account.
    pub did: atp_syntax::Did,
    /// The token id.
    pub jti: String,
}

impl FromRequestParts<AppState> for RefreshAuth {
    type Rejection = XrpcError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, XrpcError> {
        let claims = check(state, "refresh+jwt", parts)?;
        let did = claims
            .sub
            .parse()
            .map_err(|_| XrpcError::invalid_token("Bad token subject"))?;
        match (Scope::parse(&claims.scope), claims.jti) {
            (Some(Scope::Refresh), Some(jti)) => Ok(RefreshAuth { did, jti }),
            _ => Err(XrpcError::invalid_token("Bad token scope")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            scope: "com.atproto.access".into(),
            sub: "did:plc:abc".into(),
            aud: "did:web:localhost".into(),
            iat: 0,
            exp,
            jti: None,
        }
    }

    #[test]
    fn jwt_round_trip_and_rejections() {
        let token = sign_jwt(b"secret", "at+jwt", &claims(100));
        assert_eq!(verify_jwt(b"secret", "at+jwt", &token, 50), Ok(claims(100)));
        let invalid = Err(JwtRefusal::Invalid);
        assert_eq!(verify_jwt(b"other", "at+jwt", &token, 50), invalid);
        assert_eq!(verify_jwt(b"secret", "refresh+jwt", &token, 50), invalid);
        assert_eq!(
            verify_jwt(b"secret", "at+jwt", &token, 100),
            Err(JwtRefusal::Expired)
        );
        // A forged token is invalid, not expired, whatever its date.
        assert_eq!(verify_jwt(b"other", "at+jwt", &token, 100), invalid);
        let mut tampered = token.clone();
        tampered.insert(tampered.len() - 3, 'A');
        assert_eq!(verify_jwt(b"secret", "at+jwt", &tampered, 50), invalid);
        assert_eq!(verify_jwt(b"secret", "at+jwt", "a.b", 50), invalid);
    }

    #[test]
    fn password_hashes_verify() {
        let hash = hash_password("hunter22").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("hunter22", &hash));
        assert!(!verify_password("hunter23", &hash));
        assert!(!verify_password("hunter22", "garbage"));
    }
}
