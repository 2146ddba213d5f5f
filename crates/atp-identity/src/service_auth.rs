//! Inter-service auth tokens: compact JWS (`header.payload.signature`) signed with an account's
//! (or service's) atproto signing key.
//!
//! Spec: <https://atproto.com/specs/xrpc#inter-service-authentication-jwt>. Behaviour follows the
//! reference `@atproto/xrpc-server` `auth.ts`:
//! - header `{"typ":"JWT","alg":"ES256K"}` (k256) or `"ES256"` (p256); tokens typed `at+jwt`,
//!   `refresh+jwt` or `dpop+jwt` are refused ([`AuthError::BadJwtType`]);
//! - claims `iat`, `iss` (a DID, optionally `did#service`), `aud`, `exp`, `lxm` (optional NSID of
//!   the one method the token is good for), `jti` (a nonce);
//! - signature: 64-byte `r ‖ s`, base64url. Verified **leniently** (high-S accepted), as the
//!   reference does (`allowMalleableSig: true`): the signed bytes are the token text itself, so
//!   malleability cannot change what a token says. Commits and PLC operations stay strict.
//! - expiry has no grace period: a token is expired once `now > exp` (seconds);
//! - checks run in the reference's order (shape, type, expiry, audience, method, signature), so
//!   the error names ([`AuthError::error_name`]) match what the reference answers.
//!
//! Time and the `jti` nonce are arguments: nothing here reads a clock or a random generator.

use atp_crypto::{Curve, PublicKey, SignError, Signer};
use atp_syntax::{Did, Nsid};
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::b64url;

/// Default token lifetime used by [`Claims::new`], in seconds (the reference's default).
pub const DEFAULT_LIFETIME_SECS: i64 = 60;

/// The `iss` claim: a DID, optionally with a service fragment (`did:web:labeler.example#atproto_labeler`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Issuer {
    /// The DID whose key signs the token.
    pub did: Did,
    /// The service fragment, without `#`.
    pub service: Option<String>,
}

impl Issuer {
    /// An issuer without a service fragment.
    pub fn did(did: Did) -> Issuer {
        Issuer { did, service: None }
    }

    /// Parses `did` or `did#service` (the fragment must be non-empty).
    pub fn parse(s: &str) -> Option<Issuer> {
        let (did, service) = match s.split_once('#') {
            Some((did, fragment)) if !fragment.is_empty() => (did, Some(fragment.to_owned())),
            Some(_) => return None,
            None => (s, None),
        };
        Some(Issuer {
            did: Did::try_from(did).ok()?,
            service,
        })
    }
}

impl std::fmt::Display for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.service {
            Some(service) => write!(f, "{}#{service}", self.did),
            None => write!(f, "{}", self.did),
        }
    }
}

/// The claims of a service-auth token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// Who signs (and on whose behalf the request is made).
    pub iss: Issuer,
    /// The DID (optionally `#service`) of the service the token is for.
    pub aud: String,
    /// Expiry, UNIX seconds.
    pub exp: i64,
    /// Issue time, UNIX seconds (absent in some older tokens).
    pub iat: Option<i64>,
    /// The one XRPC method (NSID) the token authorizes, if bound.
    pub lxm: Option<String>,
    /// A unique nonce, for replay protection by the receiver.
    pub jti: Option<String>,
}

impl Claims {
    /// Claims issued at `now`, valid for [`DEFAULT_LIFETIME_SECS`], unbound to a method.
    pub fn new(
        iss: Issuer,
        aud: impl Into<String>,
        now: DateTime<Utc>,
        jti: impl Into<String>,
    ) -> Claims {
        let iat = now.timestamp();
        Claims {
            iss,
            aud: aud.into(),
            exp: iat.saturating_add(DEFAULT_LIFETIME_SECS),
            iat: Some(iat),
            lxm: None,
            jti: Some(jti.into()),
        }
    }

    /// Binds the token to one XRPC method.
    pub fn with_lxm(mut self, lxm: &Nsid) -> Claims {
        self.lxm = Some(lxm.to_string());
        self
    }

    /// Sets the expiry (UNIX seconds).
    pub fn expiring_at(mut self, exp: i64) -> Claims {
        self.exp = exp;
        self
    }

    fn from_json(value: &Value) -> Result<Claims, BadJwtReason> {
        let payload = value.as_object().ok_or(BadJwtReason::Payload)?;
        let string = |name: &str| payload.get(name).and_then(Value::as_str);
        let iss = string("iss").ok_or(BadJwtReason::Payload)?;
        let iss = Issuer::parse(iss).ok_or(BadJwtReason::Issuer)?;
        let aud = string("aud").ok_or(BadJwtReason::Payload)?.to_owned();
        let exp = payload
            .get("exp")
            .and_then(seconds)
            .ok_or(BadJwtReason::Payload)?;
        let lxm = match payload.get("lxm") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(BadJwtReason::Payload),
        };
        Ok(Claims {
            iss,
            aud,
            exp,
            iat: payload.get("iat").and_then(seconds),
            lxm,
            jti: string("jti").map(str::to_owned),
        })
    }
}

/// A JSON number of seconds (fractions truncated toward negative infinity).
fn seconds(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        let f = v.as_f64()?.floor();
        // The cast saturates; the range check keeps absurd values out.
        (f.is_finite() && f.abs() < 1e15).then_some(f as i64)
    })
}

/// What a verifier requires of a token's claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedClaims {
    /// Acceptable `aud` values (e.g. the service DID, and `did#service_id`); an empty list
    /// accepts nothing.
    pub audiences: Vec<String>,
    /// The method the token must be bound to; `None` skips the check.
    pub lxm: Option<Nsid>,
}

impl ExpectedClaims {
    /// Requires `aud` to be exactly `aud`; no method binding required.
    pub fn new(aud: impl Into<String>) -> ExpectedClaims {
        ExpectedClaims {
            audiences: vec![aud.into()],
            lxm: None,
        }
    }

    /// Also requires `lxm` to equal `lxm`.
    pub fn with_lxm(mut self, lxm: Nsid) -> ExpectedClaims {
        self.lxm = Some(lxm);
        self
    }
}

/// Why a token is not well-formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BadJwtReason {
    /// Not three dot-separated parts.
    Structure,
    /// A part is not base64url of UTF-8 JSON.
    Encoding,
    /// The header is not an object with a string `alg`.
    Header,
    /// The payload lacks `iss`/`aud`/`exp` of the right types, or has a non-string `lxm`.
    Payload,
    /// `iss` is not a DID, optionally followed by `#service`.
    Issuer,
}

/// Why a token's signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureFailure {
    /// `alg` is neither `ES256K` nor `ES256`.
    UnsupportedAlgorithm,
    /// `alg` names another curve than the issuer's key.
    AlgorithmMismatch,
    /// The signature part is not base64url.
    Encoding,
    /// The signature does not verify with the issuer's key.
    Mismatch,
}

/// Why a service-auth token was refused. Variant names are the reference's XRPC error names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Malformed token.
    #[error("poorly formatted jwt ({reason:?})")]
    BadJwt {
        /// What is malformed.
        reason: BadJwtReason,
    },
    /// The header `typ` names a token kind that is not a service token.
    #[error("invalid jwt type {typ:?}")]
    BadJwtType {
        /// The `typ` value.
        typ: String,
    },
    /// `now` is past `exp`.
    #[error("jwt expired")]
    JwtExpired {
        /// The token's `exp`.
        exp: i64,
    },
    /// `aud` is not an accepted audience.
    #[error("jwt audience does not match service did")]
    BadJwtAudience {
        /// The token's `aud`.
        found: String,
    },
    /// `lxm` is missing or names another method.
    #[error("{} jwt lexicon method (\"lxm\"). must match: {expected}", if found.is_some() { "bad" } else { "missing" })]
    BadJwtLexiconMethod {
        /// The required method.
        expected: Nsid,
        /// The token's `lxm`.
        found: Option<String>,
    },
    /// The signature does not verify with the issuer's key.
    #[error("jwt signature does not match jwt issuer ({reason:?})")]
    BadJwtSignature {
        /// Why.
        reason: SignatureFailure,
    },
}

impl AuthError {
    /// The XRPC error name the reference answers with (`BadJwt`, `JwtExpired`, ...).
    pub fn error_name(&self) -> &'static str {
        match self {
            AuthError::BadJwt { .. } => "BadJwt",
            AuthError::BadJwtType { .. } => "BadJwtType",
            AuthError::JwtExpired { .. } => "JwtExpired",
            AuthError::BadJwtAudience { .. } => "BadJwtAudience",
            AuthError::BadJwtLexiconMethod { .. } => "BadJwtLexiconMethod",
            AuthError::BadJwtSignature { .. } => "BadJwtSignature",
        }
    }
}

/// Failure of [`verify_with_refresh`]: the token, or the key lookup.
#[derive(Debug, thiserror::Error)]
pub enum RefreshVerifyError<E: std::error::Error + 'static> {
    /// The token was refused.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The issuer's key could not be looked up.
    #[error("could not look up the issuer's signing key: {0}")]
    KeyLookup(#[source] E),
}

fn bad(reason: BadJwtReason) -> AuthError {
    AuthError::BadJwt { reason }
}

/// Signs `claims` into a compact JWS with `signer`'s key (`alg` follows the key's curve).
///
/// The header and payload JSON have the reference's field order:
/// `{"typ":"JWT","alg":…}` and `{"iat","iss","aud","exp","lxm","jti"}` (absent ones omitted).
pub fn create_token<S: Signer + ?Sized>(claims: &Claims, signer: &S) -> Result<String, SignError> {
    let header = format!(
        r#"{{"typ":"JWT","alg":"{}"}}"#,
        signer.public_key().jwt_alg()
    );
    let payload = Payload {
        iat: claims.iat,
        iss: claims.iss.to_string(),
        aud: &claims.aud,
        exp: claims.exp,
        lxm: claims.lxm.as_deref(),
        jti: claims.jti.as_deref(),
    };
    let payload = serde_json::to_string(&payload)
        .expect("a struct of strings and integers always serialises");
    let signing_input = format!(
        "{}.{}",
        b64url::encode(header.as_bytes()),
        b64url::encode(payload.as_bytes())
    );
    let sig = signer.sign(signing_input.as_bytes())?;
    Ok(format!("{signing_input}.{}", b64url::encode(&sig)))
}

/// The payload as written, field order included.
#[derive(serde::Serialize)]
struct Payload<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    iss: String,
    aud: &'a str,
    exp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    lxm: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<&'a str>,
}

/// A decoded token whose signature has not been checked yet.
#[derive(Debug, Clone)]
pub struct UnverifiedToken {
    alg: String,
    claims: Claims,
    signing_input: String,
    signature: Result<Vec<u8>, SignatureFailure>,
}

/// Splits and decodes a token without checking anything but its shape (and its `typ`).
pub fn decode_unverified(token: &str) -> Result<UnverifiedToken, AuthError> {
    let (signing_input, sig) = token.rsplit_once('.').ok_or(bad(BadJwtReason::Structure))?;
    let (header, payload) = signing_input
        .split_once('.')
        .ok_or(bad(BadJwtReason::Structure))?;
    if payload.contains('.') {
        return Err(bad(BadJwtReason::Structure));
    }
    let header = json_part(header)?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(bad(BadJwtReason::Header))?
        .to_owned();
    if let Some(typ @ ("at+jwt" | "refresh+jwt" | "dpop+jwt")) =
        header.get("typ").and_then(Value::as_str)
    {
        return Err(AuthError::BadJwtType {
            typ: typ.to_owned(),
        });
    }
    let claims = Claims::from_json(&json_part(payload)?).map_err(bad)?;
    Ok(UnverifiedToken {
        alg,
        claims,
        signing_input: signing_input.to_owned(),
        signature: b64url::decode_lenient(sig).map_err(|_| SignatureFailure::Encoding),
    })
}

fn json_part(part: &str) -> Result<Value, AuthError> {
    let bytes = b64url::decode_lenient(part).map_err(|_| bad(BadJwtReason::Encoding))?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| bad(BadJwtReason::Encoding))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(bad(BadJwtReason::Encoding))
    }
}

impl UnverifiedToken {
    /// The claims, unverified: only for choosing the key to verify with.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// The header's `alg`.
    pub fn alg(&self) -> &str {
        &self.alg
    }

    /// Checks expiry, audience and method binding against `expected` at time `now`.
    pub fn check_claims(
        &self,
        expected: &ExpectedClaims,
        now: DateTime<Utc>,
    ) -> Result<(), AuthError> {
        let claims = &self.claims;
        if now.timestamp_millis() > claims.exp.saturating_mul(1000) {
            return Err(AuthError::JwtExpired { exp: claims.exp });
        }
        if !expected.audiences.iter().any(|a| a == &claims.aud) {
            return Err(AuthError::BadJwtAudience {
                found: claims.aud.clone(),
            });
        }
        if let Some(lxm) = &expected.lxm
            && claims.lxm.as_deref() != Some(lxm.as_str())
        {
            return Err(AuthError::BadJwtLexiconMethod {
                expected: lxm.clone(),
                found: claims.lxm.clone(),
            });
        }
        Ok(())
    }

    /// Checks the signature with `key` (leniently: high-S accepted); `alg` must match its curve.
    pub fn check_signature(&self, key: &PublicKey) -> Result<(), AuthError> {
        let fail = |reason| AuthError::BadJwtSignature { reason };
        let curve =
            Curve::from_jwt_alg(&self.alg).ok_or(fail(SignatureFailure::UnsupportedAlgorithm))?;
        if curve != key.curve() {
            return Err(fail(SignatureFailure::AlgorithmMismatch));
        }
        let sig = self.signature.as_ref().map_err(|&reason| fail(reason))?;
        key.verify_lenient(self.signing_input.as_bytes(), sig)
            .map_err(|_| fail(SignatureFailure::Mismatch))
    }
}

/// Verifies a token with the issuer's `key`: shape, expiry at `now`, audience, method binding,
/// then signature. Returns the claims.
pub fn verify(
    token: &str,
    expected: &ExpectedClaims,
    now: DateTime<Utc>,
    key: &PublicKey,
) -> Result<Claims, AuthError> {
    let token = decode_unverified(token)?;
    token.check_claims(expected, now)?;
    token.check_signature(key)?;
    Ok(token.claims)
}

/// Like [`verify`], looking the issuer's key up with `get_key(did, force_refresh)`. When the
/// signature does not verify, the key is fetched once more with `force_refresh = true` (it may
/// have just been rotated) and, if it changed, tried again: the reference's behaviour.
pub fn verify_with_refresh<E: std::error::Error + 'static>(
    token: &str,
    expected: &ExpectedClaims,
    now: DateTime<Utc>,
    mut get_key: impl FnMut(&Did, bool) -> Result<PublicKey, E>,
) -> Result<Claims, RefreshVerifyError<E>> {
    let token = decode_unverified(token)?;
    token.check_claims(expected, now)?;
    let did = &token.claims.iss.did;
    let key = get_key(did, false).map_err(RefreshVerifyError::KeyLookup)?;
    if let Err(first) = token.check_signature(&key) {
        let fresh = get_key(did, true).map_err(RefreshVerifyError::KeyLookup)?;
        if fresh == key {
            return Err(first.into());
        }
        token.check_signature(&fresh)?;
    }
    Ok(token.claims)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use atp_crypto::Keypair;
    use chrono::TimeZone;

    use super::*;
    use crate::fixtures::{keypair, to_high_s};

    const ISS: &str = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";
    const AUD: &str = "did:web:pds.example.com";

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).single().unwrap()
    }

    fn nsid(s: &str) -> Nsid {
        s.parse().unwrap()
    }

    fn claims() -> Claims {
        Claims::new(Issuer::did(ISS.parse().unwrap()), AUD, at(1_000), "nonce-1")
            .with_lxm(&nsid("com.atproto.server.createAccount"))
    }

    fn expected() -> ExpectedClaims {
        ExpectedClaims::new(AUD).with_lxm(nsid("com.atproto.server.createAccount"))
    }

    fn part(token: &str, i: usize) -> Value {
        let p = token.split('.').nth(i).unwrap();
        serde_json::from_slice(&b64url::decode_strict(p).unwrap()).unwrap()
    }

    /// Re-signs `header.payload` as given, for hand-made tokens.
    fn raw_token(header: &str, payload: &str, key: &Keypair) -> String {
        let input = format!(
            "{}.{}",
            b64url::encode(header.as_bytes()),
            b64url::encode(payload.as_bytes())
        );
        format!("{input}.{}", b64url::encode(&key.sign(input.as_bytes())))
    }

    #[test]
    fn create_and_verify_both_curves() {
        for (curve, alg) in [(Curve::K256, "ES256K"), (Curve::P256, "ES256")] {
            let key = keypair(curve, 7);
            let token = create_token(&claims(), &key).unwrap();
            let header = token.split('.').next().unwrap();
            let header = String::from_utf8(b64url::decode_strict(header).unwrap()).unwrap();
            assert_eq!(header, format!(r#"{{"typ":"JWT","alg":"{alg}"}}"#));
            let payload = part(&token, 1);
            assert_eq!(payload["iat"], 1_000);
            assert_eq!(payload["exp"], 1_060);
            assert_eq!(payload["jti"], "nonce-1");
            let got = verify(&token, &expected(), at(1_030), &key.public_key()).unwrap();
            assert_eq!(got, claims());
        }
    }

    #[test]
    fn expiry_has_no_grace() {
        let key = keypair(Curve::K256, 7);
        let token = create_token(&claims(), &key).unwrap();
        assert!(verify(&token, &expected(), at(1_060), &key.public_key()).is_ok());
        let err = verify(&token, &expected(), at(1_061), &key.public_key()).unwrap_err();
        assert_eq!(err, AuthError::JwtExpired { exp: 1_060 });
        assert_eq!(err.error_name(), "JwtExpired");
    }

    #[test]
    fn audience_and_method_binding() {
        let key = keypair(Curve::P256, 7);
        let token = create_token(&claims(), &key).unwrap();
        let pk = key.public_key();
        let err = verify(
            &token,
            &ExpectedClaims::new("did:web:other.example"),
            at(1_000),
            &pk,
        );
        assert!(matches!(err, Err(AuthError::BadJwtAudience { .. })));
        let mut two = ExpectedClaims::new("did:web:other.example");
        two.audiences.push(AUD.to_owned());
        assert!(verify(&token, &two, at(1_000), &pk).is_ok());
        let wrong = ExpectedClaims::new(AUD).with_lxm(nsid("com.atproto.repo.deleteRecord"));
        let err = verify(&token, &wrong, at(1_000), &pk).unwrap_err();
        assert!(matches!(
            &err,
            AuthError::BadJwtLexiconMethod { found: Some(_), .. }
        ));
        assert!(err.to_string().starts_with("bad jwt lexicon method"));
        let unbound = create_token(
            &Claims {
                lxm: None,
                ..claims()
            },
            &key,
        )
        .unwrap();
        let err = verify(&unbound, &expected(), at(1_000), &pk).unwrap_err();
        assert!(matches!(
            err,
            AuthError::BadJwtLexiconMethod { found: None, .. }
        ));
        assert!(verify(&unbound, &ExpectedClaims::new(AUD), at(1_000), &pk).is_ok());
    }

    #[test]
    fn tampering_is_refused() {
        let key = keypair(Curve::K256, 7);
        let token = create_token(&claims(), &key).unwrap();
        let pk = key.public_key();
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let forged = Claims {
            aud: "did:web:evil.example".into(),
            ..claims()
        };
        let forged_token = create_token(&forged, &keypair(Curve::K256, 8)).unwrap();
        parts[1] = forged_token.split('.').nth(1).unwrap().to_owned();
        let tampered = parts.join(".");
        let exp = ExpectedClaims::new("did:web:evil.example");
        let err = verify(&tampered, &exp, at(1_000), &pk).unwrap_err();
        assert_eq!(
            err,
            AuthError::BadJwtSignature {
                reason: SignatureFailure::Mismatch
            }
        );
        let other_key = keypair(Curve::K256, 9).public_key();
        assert!(verify(&token, &expected(), at(1_000), &other_key).is_err());
        let p256 = keypair(Curve::P256, 7).public_key();
        let err = verify(&token, &expected(), at(1_000), &p256).unwrap_err();
        assert_eq!(
            err,
            AuthError::BadJwtSignature {
                reason: SignatureFailure::AlgorithmMismatch
            }
        );
    }

    #[test]
    fn malformed_tokens() {
        let pk = keypair(Curve::K256, 7).public_key();
        for bad in ["", "a.b", "a.b.c.d", "!!.e30.AA", "e30.e30.AA"] {
            let err = verify(bad, &expected(), at(0), &pk).unwrap_err();
            assert!(matches!(err, AuthError::BadJwt { .. }), "{bad}: {err:?}");
        }
        let key = keypair(Curve::K256, 7);
        let typed = raw_token(
            r#"{"typ":"at+jwt","alg":"ES256K"}"#,
            r#"{"iss":"did:plc:x","aud":"a","exp":1}"#,
            &key,
        );
        assert_eq!(
            verify(&typed, &expected(), at(0), &pk),
            Err(AuthError::BadJwtType {
                typ: "at+jwt".into()
            })
        );
        let bad_iss = raw_token(
            r#"{"alg":"ES256K"}"#,
            r#"{"iss":"nope","aud":"a","exp":1}"#,
            &key,
        );
        assert_eq!(
            verify(&bad_iss, &expected(), at(0), &pk),
            Err(AuthError::BadJwt {
                reason: BadJwtReason::Issuer
            })
        );
        let bad_lxm = raw_token(
            r#"{"alg":"ES256K"}"#,
            r#"{"iss":"did:plc:x","aud":"a","exp":1,"lxm":5}"#,
            &key,
        );
        assert!(matches!(
            verify(&bad_lxm, &expected(), at(0), &pk),
            Err(AuthError::BadJwt { .. })
        ));
        let bad_alg = raw_token(
            r#"{"alg":"HS256"}"#,
            &format!(r#"{{"iss":"{ISS}","aud":"{AUD}","exp":10}}"#),
            &key,
        );
        assert_eq!(
            verify(&bad_alg, &ExpectedClaims::new(AUD), at(0), &pk),
            Err(AuthError::BadJwtSignature {
                reason: SignatureFailure::UnsupportedAlgorithm
            })
        );
    }

    #[test]
    fn service_issuer() {
        let iss = Issuer::parse("did:web:labeler.example#atproto_labeler").unwrap();
        assert_eq!(iss.service.as_deref(), Some("atproto_labeler"));
        assert_eq!(iss.to_string(), "did:web:labeler.example#atproto_labeler");
        assert!(Issuer::parse("did:web:x#").is_none());
        let key = keypair(Curve::P256, 3);
        let token = create_token(
            &Claims {
                iss: iss.clone(),
                ..claims()
            },
            &key,
        )
        .unwrap();
        assert_eq!(
            verify(&token, &expected(), at(1_000), &key.public_key())
                .unwrap()
                .iss,
            iss
        );
    }

    #[test]
    fn high_s_accepted_for_jwt_only() {
        for curve in [Curve::K256, Curve::P256] {
            let key = keypair(curve, 5);
            let token = create_token(&claims(), &key).unwrap();
            let (input, sig) = token.rsplit_once('.').unwrap();
            let sig: [u8; 64] = b64url::decode_strict(sig).unwrap().try_into().unwrap();
            let high = to_high_s(curve, &sig);
            let high_token = format!("{input}.{}", b64url::encode(&high));
            assert!(verify(&high_token, &expected(), at(1_000), &key.public_key()).is_ok());
            assert!(matches!(
                key.public_key().verify(input.as_bytes(), &high),
                Err(atp_crypto::VerifyError::HighS { .. })
            ));
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("lookup failed")]
    struct LookupFailed;

    #[test]
    fn refresh_retries_once_with_fresh_key() {
        let old = keypair(Curve::K256, 1).public_key();
        let new_key = keypair(Curve::K256, 2);
        let token = create_token(&claims(), &new_key).unwrap();
        let calls = RefCell::new(Vec::new());
        let got = verify_with_refresh(&token, &expected(), at(1_000), |did: &Did, refresh| {
            calls.borrow_mut().push((did.to_string(), refresh));
            Ok::<_, LookupFailed>(if refresh {
                new_key.public_key()
            } else {
                old.clone()
            })
        });
        assert!(got.is_ok());
        assert_eq!(
            *calls.borrow(),
            vec![(ISS.to_owned(), false), (ISS.to_owned(), true)]
        );

        let same = verify_with_refresh(&token, &expected(), at(1_000), |_: &Did, _| {
            Ok::<_, LookupFailed>(old.clone())
        });
        assert!(matches!(
            same,
            Err(RefreshVerifyError::Auth(AuthError::BadJwtSignature { .. }))
        ));
        let failing = verify_with_refresh(&token, &expected(), at(1_000), |_: &Did, _| {
            Err::<PublicKey, _>(LookupFailed)
        });
        assert!(matches!(
            failing,
            Err(RefreshVerifyError::KeyLookup(LookupFailed))
        ));
        let expired = verify_with_refresh(&token, &expected(), at(5_000), |_: &Did, _| {
            Err::<PublicKey, _>(LookupFailed)
        });
        assert!(
            matches!(
                expired,
                Err(RefreshVerifyError::Auth(AuthError::JwtExpired { .. }))
            ),
            "claims first, no lookup"
        );
    }
}
