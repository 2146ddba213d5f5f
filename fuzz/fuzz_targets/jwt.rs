//! Service-auth JWTs (`atp_identity::service_auth`): decoding and verification never panic, and
//! the verdict is consistent.
//!
//! The first byte picks a mode (the rest is the input):
//! - `0`: the rest is the token text (lossy UTF-8).
//! - `1`: the rest is `header JSON ‖ 0x00 ‖ payload JSON` (without `0x00`, the payload only, under
//!   a `{"typ":"JWT","alg":…}` header). The target base64url-encodes both and signs them with a
//!   fixed key (k256 or p256, bit 7 of the first byte), so the signature check passes and the
//!   claim checks decide.
//! - `2`: claims built from the rest (`Unstructured`), signed with `create_token`; decoding must
//!   give back exactly these claims.
//!
//! Properties: `verify` equals `decode_unverified` + `check_claims` + `check_signature`, and
//! `verify_with_refresh` (same key both times) gives the same verdict; accepted claims satisfy
//! what was expected (audience, method, expiry); a token signed by the verifying key whose `alg`
//! names that key's curve and whose claims pass is accepted; an accepted issuer prints and parses
//! back to itself.
#![no_main]

use std::convert::Infallible;
use std::sync::LazyLock;

use atp_crypto::{Curve, Keypair, PublicKey};
use atp_identity::service_auth::{
    self, AuthError, Claims, ExpectedClaims, Issuer, RefreshVerifyError, decode_unverified,
};
use atp_syntax::Nsid;
use chrono::{DateTime, TimeZone, Utc};
use data_encoding::BASE64URL_NOPAD;
use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;

/// Audience and method the verifier expects; seeds use them so the claim checks can pass.
const AUD: &str = "did:web:fuzz.example";
const LXM: &str = "com.atproto.repo.createRecord";
/// The verifier's clock (2023-11-14T22:13:20Z).
const NOW: i64 = 1_700_000_000;

/// One fixed keypair per curve (scalar `0x11…11`), as in the `did_key` target.
static KEYS: LazyLock<Vec<Keypair>> = LazyLock::new(|| {
    Curve::ALL
        .into_iter()
        .map(|curve| Keypair::from_private_bytes(curve, &[0x11; 32]).expect("fixed scalar"))
        .collect()
});

static EXPECTED: LazyLock<[ExpectedClaims; 3]> = LazyLock::new(|| {
    let lxm: Nsid = LXM.parse().expect("fixed NSID");
    [
        ExpectedClaims::new(AUD),
        ExpectedClaims::new(AUD).with_lxm(lxm),
        ExpectedClaims {
            audiences: vec![AUD.to_owned(), format!("{AUD}#atproto_pds")],
            lxm: None,
        },
    ]
});

fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(NOW, 0).single().expect("fixed time")
}

/// `signed_by`: the key whose signature the token carries, when the target signed it.
fn check(token: &str, signed_by: Option<&PublicKey>) {
    let decoded = decode_unverified(token);
    if let Ok(t) = &decoded {
        let iss = &t.claims().iss;
        assert_eq!(Issuer::parse(&iss.to_string()).as_ref(), Some(iss));
    }
    for keypair in KEYS.iter() {
        let key = keypair.public_key();
        // Signature checks dominate the cost: check once per key, and the refresh path once.
        let signature = decoded.as_ref().ok().map(|t| t.check_signature(&key));
        for (i, expected) in EXPECTED.iter().enumerate() {
            let result = service_auth::verify(token, expected, now(), &key);
            if i == 0 {
                let refreshed =
                    service_auth::verify_with_refresh(token, expected, now(), |_, _| {
                        Ok::<_, Infallible>(key.clone())
                    })
                    .map_err(|e| match e {
                        RefreshVerifyError::Auth(e) => e,
                        RefreshVerifyError::KeyLookup(never) => match never {},
                    });
                assert_eq!(result, refreshed);
            }
            let t = match &decoded {
                Err(e) => {
                    assert_eq!(result.as_ref().err(), Some(e));
                    continue;
                }
                Ok(t) => t,
            };
            let claims_ok = t.check_claims(expected, now());
            let signature = signature.clone().expect("decoded");
            let manual = claims_ok
                .clone()
                .and(signature)
                .map(|()| t.claims().clone());
            assert_eq!(result, manual);
            if let Ok(claims) = &result {
                assert!(expected.audiences.contains(&claims.aud));
                assert!(claims.exp >= NOW);
                if let Some(lxm) = &expected.lxm {
                    assert_eq!(claims.lxm.as_deref(), Some(lxm.as_str()));
                }
            }
            if signed_by == Some(&key) && t.alg() == key.jwt_alg() && claims_ok.is_ok() {
                assert_eq!(
                    result,
                    Ok(t.claims().clone()),
                    "honest token refused: {token}"
                );
            }
            if let Err(AuthError::BadJwtSignature { .. }) = result {
                assert!(claims_ok.is_ok());
            }
        }
    }
}

fn sign_parts(keypair: &Keypair, header: &[u8], payload: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        BASE64URL_NOPAD.encode(header),
        BASE64URL_NOPAD.encode(payload)
    );
    let sig = keypair.sign(input.as_bytes());
    format!("{input}.{}", BASE64URL_NOPAD.encode(&sig))
}

fn arbitrary_claims(u: &mut Unstructured) -> libfuzzer_sys::arbitrary::Result<Claims> {
    let iss = if bool::arbitrary(u)? {
        Issuer::parse(<&str>::arbitrary(u)?)
    } else {
        None
    };
    let iss = iss
        .unwrap_or_else(|| Issuer::did("did:plc:ewvi7nxzyoun6zhxrhs64oiz".parse().expect("DID")));
    let aud = if bool::arbitrary(u)? {
        AUD.to_owned()
    } else {
        String::arbitrary(u)?
    };
    let exp = match u8::arbitrary(u)? % 4 {
        0 => NOW,
        1 => NOW - 1,
        2 => NOW + i64::from(u16::arbitrary(u)?),
        _ => i64::arbitrary(u)?,
    };
    let lxm = match u8::arbitrary(u)? % 3 {
        0 => None,
        1 => Some(LXM.to_owned()),
        _ => Some(String::arbitrary(u)?),
    };
    Ok(Claims {
        iss,
        aud,
        exp,
        iat: Option::<i64>::arbitrary(u)?,
        lxm,
        jti: Option::<String>::arbitrary(u)?,
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let keypair = &KEYS[usize::from(mode >> 7) % KEYS.len()];
    match mode & 0x7f {
        0 => check(&String::from_utf8_lossy(rest), None),
        1 => {
            let header;
            let (header, payload) = match rest.iter().position(|&b| b == 0) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => {
                    header = format!(
                        r#"{{"typ":"JWT","alg":"{}"}}"#,
                        keypair.public_key().jwt_alg()
                    );
                    (header.as_bytes(), rest)
                }
            };
            check(
                &sign_parts(keypair, header, payload),
                Some(&keypair.public_key()),
            );
        }
        2 => {
            let mut u = Unstructured::new(rest);
            let Ok(claims) = arbitrary_claims(&mut u) else {
                return;
            };
            let token = service_auth::create_token(&claims, keypair).expect("local key signs");
            let decoded = decode_unverified(&token).expect("own token decodes");
            assert_eq!(decoded.claims(), &claims);
            assert_eq!(decoded.alg(), keypair.public_key().jwt_alg());
            check(&token, Some(&keypair.public_key()));
        }
        _ => {}
    }
});
