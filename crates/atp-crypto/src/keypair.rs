//! Private keys: generation, import/export of the raw scalar, and low-S signing.

use std::fmt;

use ecdsa::signature::Signer as _;
use rand_core::CryptoRngCore;
use zeroize::{Zeroize, Zeroizing};

use crate::{Curve, KeyError, PublicKey};

/// Normalises `s` to the lower half (p256 may sign high-S) and serialises `r ‖ s`.
/// (A macro rather than a generic function, for the same reason as in `public_key`.)
macro_rules! low_s_bytes {
    ($sig:expr) => {{
        let sig = $sig;
        let sig = sig.normalize_s().unwrap_or(sig);
        let mut out = [0u8; 64];
        out.copy_from_slice(&sig.to_bytes());
        out
    }};
}

/// A signing key of either curve. The curve crates zeroize the scalar when it is dropped.
#[derive(Clone)]
enum Secret {
    K256(k256::ecdsa::SigningKey),
    P256(p256::ecdsa::SigningKey),
}

/// An atproto keypair (K-256 or P-256).
///
/// The private scalar is zeroized on drop, and `Debug` prints only the public `did:key`.
/// Signatures are deterministic (RFC 6979), use SHA-256 over the message, and are always low-S.
#[derive(Clone)]
pub struct Keypair {
    secret: Secret,
    public: PublicKey,
}

impl Keypair {
    /// Generates a new random keypair with the operating system's RNG.
    pub fn generate(curve: Curve) -> Keypair {
        Keypair::generate_with_rng(curve, &mut rand_core::OsRng)
    }

    /// Generates a new keypair with the given RNG (for deterministic tests).
    pub fn generate_with_rng(curve: Curve, rng: &mut impl CryptoRngCore) -> Keypair {
        let secret = match curve {
            Curve::K256 => Secret::K256(k256::ecdsa::SigningKey::random(rng)),
            Curve::P256 => Secret::P256(p256::ecdsa::SigningKey::random(rng)),
        };
        Keypair::from_secret(secret)
    }

    /// Imports a raw private scalar: exactly 32 big-endian bytes, non-zero and below the curve
    /// order.
    pub fn from_private_bytes(curve: Curve, bytes: &[u8]) -> Result<Keypair, KeyError> {
        // The curve crates would left-pad shorter input; atproto keys are always 32 bytes.
        if bytes.len() != 32 {
            return Err(KeyError::PrivateKeyLength { len: bytes.len() });
        }
        let invalid = |_| KeyError::InvalidPrivateKey { curve };
        let secret = match curve {
            Curve::K256 => {
                Secret::K256(k256::ecdsa::SigningKey::from_slice(bytes).map_err(invalid)?)
            }
            Curve::P256 => {
                Secret::P256(p256::ecdsa::SigningKey::from_slice(bytes).map_err(invalid)?)
            }
        };
        Ok(Keypair::from_secret(secret))
    }

    /// Imports a private scalar written as 64 hex digits (either case).
    pub fn from_private_hex(curve: Curve, hex: &str) -> Result<Keypair, KeyError> {
        let bytes = Zeroizing::new(hex::decode(hex).map_err(|_| KeyError::PrivateKeyHex)?);
        Keypair::from_private_bytes(curve, &bytes)
    }

    fn from_secret(secret: Secret) -> Keypair {
        let public = match &secret {
            Secret::K256(key) => PublicKey::from_k256(*key.verifying_key()),
            Secret::P256(key) => PublicKey::from_p256(*key.verifying_key()),
        };
        // A signing key's public point is never the identity (the scalar is non-zero).
        let public = public.expect("the public point of a non-zero scalar is not the identity");
        Keypair { secret, public }
    }

    /// The raw private scalar (32 bytes, big-endian), zeroized when the returned value drops.
    pub fn private_bytes(&self) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        let mut bytes = match &self.secret {
            Secret::K256(key) => key.to_bytes(),
            Secret::P256(key) => key.to_bytes(),
        };
        out.copy_from_slice(&bytes);
        bytes.zeroize();
        out
    }

    /// The raw private scalar as 64 lower-case hex digits, zeroized when dropped.
    pub fn private_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(*self.private_bytes()))
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        self.public.clone()
    }

    /// The key's curve.
    pub fn curve(&self) -> Curve {
        self.public.curve()
    }

    /// The `did:key` of the public half.
    pub fn did_key(&self) -> String {
        self.public.did_key()
    }

    /// Signs `msg` (SHA-256 inside ECDSA) and returns the 64-byte low-S `r ‖ s` signature.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        match &self.secret {
            Secret::K256(key) => {
                let sig: k256::ecdsa::Signature = key.sign(msg);
                low_s_bytes!(sig)
            }
            Secret::P256(key) => {
                let sig: p256::ecdsa::Signature = key.sign(msg);
                low_s_bytes!(sig)
            }
        }
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keypair")
            .field("public", &self.public.did_key())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn is_high_s(curve: Curve, sig: &[u8; 64]) -> bool {
        match curve {
            Curve::K256 => k256::ecdsa::Signature::from_slice(sig)
                .unwrap()
                .normalize_s()
                .is_some(),
            Curve::P256 => p256::ecdsa::Signature::from_slice(sig)
                .unwrap()
                .normalize_s()
                .is_some(),
        }
    }

    /// Flips `s` to `n - s`, turning a low-S signature into its high-S twin.
    fn to_high_s(curve: Curve, sig: &[u8; 64]) -> Vec<u8> {
        macro_rules! flip {
            ($signature:ty) => {{
                let (r, s) = <$signature>::from_slice(sig).unwrap().split_scalars();
                let high = <$signature>::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
                high.to_bytes().to_vec()
            }};
        }
        match curve {
            Curve::K256 => flip!(k256::ecdsa::Signature),
            Curve::P256 => flip!(p256::ecdsa::Signature),
        }
    }

    #[test]
    fn sign_verify_round_trip_both_curves() {
        for curve in Curve::ALL {
            let key = Keypair::generate(curve);
            let sig = key.sign(b"hello atproto");
            let public = key.public_key();
            assert_eq!(public.verify(b"hello atproto", &sig), Ok(()));
            assert_eq!(public.verify_lenient(b"hello atproto", &sig), Ok(()));
            assert_eq!(
                public.verify(b"hello atprotO", &sig),
                Err(crate::VerifyError::Mismatch { curve })
            );
            let other = Keypair::generate(curve).public_key();
            assert!(other.verify(b"hello atproto", &sig).is_err());
        }
    }

    #[test]
    fn signatures_are_always_low_s_and_high_s_twins_are_strictly_refused() {
        for curve in Curve::ALL {
            let key = Keypair::from_private_bytes(curve, &[0x42; 32]).unwrap();
            for i in 0u32..64 {
                let msg = i.to_be_bytes();
                let sig = key.sign(&msg);
                assert!(!is_high_s(curve, &sig), "{curve} message {i}: high-S");
                let high = to_high_s(curve, &sig);
                assert_eq!(
                    key.public_key().verify(&msg, &high),
                    Err(crate::VerifyError::HighS { curve })
                );
                assert_eq!(key.public_key().verify_lenient(&msg, &high), Ok(()));
            }
        }
    }

    #[test]
    fn private_key_import_export() {
        for curve in Curve::ALL {
            let key = Keypair::generate(curve);
            let again = Keypair::from_private_hex(curve, &key.private_hex()).unwrap();
            assert_eq!(again.public_key(), key.public_key());
            assert_eq!(*again.private_bytes(), *key.private_bytes());
            let upper = key.private_hex().to_uppercase();
            assert_eq!(
                Keypair::from_private_hex(curve, &upper).unwrap().did_key(),
                key.did_key()
            );

            let err = |r: Result<Keypair, KeyError>| r.map(|k| k.did_key()).unwrap_err();
            assert_eq!(
                err(Keypair::from_private_bytes(curve, &[1; 31])),
                KeyError::PrivateKeyLength { len: 31 }
            );
            assert_eq!(
                err(Keypair::from_private_bytes(curve, &[1; 33])),
                KeyError::PrivateKeyLength { len: 33 }
            );
            assert_eq!(
                err(Keypair::from_private_bytes(curve, &[0; 32])),
                KeyError::InvalidPrivateKey { curve }
            );
            assert_eq!(
                err(Keypair::from_private_bytes(curve, &[0xff; 32])),
                KeyError::InvalidPrivateKey { curve }
            );
            assert_eq!(
                err(Keypair::from_private_hex(curve, "zz")),
                KeyError::PrivateKeyHex
            );
            assert_eq!(
                err(Keypair::from_private_hex(curve, "abc")),
                KeyError::PrivateKeyHex
            );
        }
    }

    #[test]
    fn debug_never_prints_the_secret() {
        for curve in Curve::ALL {
            let key = Keypair::generate(curve);
            let debug = format!("{key:?}");
            assert!(debug.contains(&key.did_key()), "{debug}");
            assert!(!debug.contains(key.private_hex().as_str()), "{debug}");
            assert!(
                !debug
                    .to_uppercase()
                    .contains(&key.private_hex().to_uppercase())
            );
        }
    }

    #[test]
    fn signature_shape_errors() {
        let key = Keypair::from_private_bytes(Curve::P256, &[5; 32]).unwrap();
        let public = key.public_key();
        let sig = key.sign(b"m");
        assert_eq!(
            public.verify(b"m", &sig[..63]),
            Err(crate::VerifyError::SignatureLength {
                len: 63,
                der_like: false
            })
        );
        assert_eq!(
            public.verify(b"m", &[0u8; 64]),
            Err(crate::VerifyError::MalformedSignature { curve: Curve::P256 })
        );
        assert_eq!(
            public.verify_lenient(b"m", &[0xffu8; 64]),
            Err(crate::VerifyError::MalformedSignature { curve: Curve::P256 })
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn signatures_verify_and_mutations_fail(
            k256_curve in any::<bool>(),
            seed in any::<[u8; 32]>(),
            msg in proptest::collection::vec(any::<u8>(), 0..200),
            flip_at in any::<usize>(),
            flip_bit in 0u8..8,
        ) {
            let curve = if k256_curve { Curve::K256 } else { Curve::P256 };
            // Almost every seed is a valid scalar; skip the rest.
            let Ok(key) = Keypair::from_private_bytes(curve, &seed) else { return Ok(()) };
            let public = key.public_key();
            let sig = key.sign(&msg);
            prop_assert!(!is_high_s(curve, &sig));
            prop_assert_eq!(public.verify(&msg, &sig), Ok(()));

            let mut bad_sig = sig;
            bad_sig[flip_at % 64] ^= 1 << flip_bit;
            prop_assert!(public.verify(&msg, &bad_sig).is_err());

            let mut bad_msg = msg.clone();
            if bad_msg.is_empty() {
                bad_msg.push(0);
            } else {
                let i = flip_at % bad_msg.len();
                bad_msg[i] ^= 1 << flip_bit;
            }
            prop_assert!(public.verify(&bad_msg, &sig).is_err());
            prop_assert!(public.verify_lenient(&bad_msg, &sig).is_err());
        }
    }
}
