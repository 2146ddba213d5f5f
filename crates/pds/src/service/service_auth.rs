//! Minting inter-service auth tokens on an account's behalf (proxying, `getServiceAuth`).
//!
//! The token format and its verification live in `atp_identity::service_auth`; this module only
//! adds what a server needs to issue one: a fresh random `jti` (16 bytes, hex, as the reference's
//! `createServiceJwt`) and the account's signing key.

use atp_crypto::{Keypair, SignError};
use atp_identity::service_auth::{Claims, Issuer, create_token};
use atp_syntax::{Did, Nsid};

/// Lifetime of the tokens the proxy mints, in seconds (the reference's default: one minute).
pub const PROXY_TOKEN_LIFETIME_SECS: i64 = 60;

/// Why a token could not be minted.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// The expiry is not after the issue time.
    #[error("the token's expiry ({exp}) is not after its issue time ({now})")]
    BadExpiry {
        /// The requested expiry.
        exp: i64,
        /// The issue time.
        now: i64,
    },
    /// The key could not sign.
    #[error(transparent)]
    Sign(#[from] SignError),
}

/// A signed service-auth JWT: `iss` = `iss`, `aud` = `aud` (a DID, or `did#service`),
/// `lxm` = `lxm` when given, `iat` = `now`, `exp` = `exp_secs` (both UNIX seconds: `exp_secs` is
/// the absolute expiry, not a lifetime), and a fresh random `jti`.
pub fn mint(
    key: &Keypair,
    iss: &Did,
    aud: &str,
    lxm: Option<&Nsid>,
    exp_secs: i64,
    now: i64,
) -> Result<String, MintError> {
    if exp_secs <= now {
        return Err(MintError::BadExpiry { exp: exp_secs, now });
    }
    let now_time = chrono::DateTime::from_timestamp(now, 0).unwrap_or_default();
    let mut claims = Claims::new(Issuer::did(iss.clone()), aud, now_time, random_jti());
    claims.iat = Some(now);
    if let Some(lxm) = lxm {
        claims = claims.with_lxm(lxm);
    }
    Ok(create_token(&claims.expiring_at(exp_secs), key)?)
}

/// 16 random bytes, hex-encoded.
fn random_jti() -> String {
    let mut bytes = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use atp_crypto::Curve;
    use atp_identity::service_auth::{ExpectedClaims, decode_unverified};

    #[test]
    fn minted_tokens_verify_and_carry_the_claims() {
        let key = Keypair::generate(Curve::K256);
        let did: Did = "did:plc:abcdefghijklmnopqrstuvwx".parse().unwrap();
        let lxm: Nsid = "app.bsky.feed.getTimeline".parse().unwrap();
        let now = 1_700_000_000;
        let mint_one = || {
            mint(
                &key,
                &did,
                "did:web:api.bsky.app",
                Some(&lxm),
                now + 60,
                now,
            )
            .unwrap()
        };
        let (a, b) = (mint_one(), mint_one());
        let token = decode_unverified(&a).unwrap();
        let claims = token.claims();
        assert_eq!(claims.iss.did, did);
        assert_eq!(claims.aud, "did:web:api.bsky.app");
        assert_eq!(claims.lxm.as_deref(), Some("app.bsky.feed.getTimeline"));
        assert_eq!((claims.iat, claims.exp), (Some(now), now + 60));
        assert_eq!(claims.jti.as_ref().map(String::len), Some(32));
        assert_ne!(
            claims.jti,
            decode_unverified(&b).unwrap().claims().jti.clone()
        );
        let expected = ExpectedClaims::new("did:web:api.bsky.app").with_lxm(lxm);
        let at = chrono::DateTime::from_timestamp(now + 1, 0).unwrap();
        token.check_claims(&expected, at).unwrap();
        token.check_signature(&key.public_key()).unwrap();
    }

    #[test]
    fn an_expiry_not_after_now_is_refused() {
        let key = Keypair::generate(Curve::P256);
        let did: Did = "did:plc:abcdefghijklmnopqrstuvwx".parse().unwrap();
        assert!(matches!(
            mint(&key, &did, "did:web:x.test", None, 10, 10),
            Err(MintError::BadExpiry { .. })
        ));
    }
}
