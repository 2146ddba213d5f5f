//! Public keys: SEC1 parsing and signature verification (strict low-S, or lenient).

use std::fmt;
use std::hash::{Hash, Hasher};

use ecdsa::signature::Verifier;

use crate::{Curve, KeyError, VerifyError};

/// A verifying key of either curve.
#[derive(Clone)]
enum Verifying {
    K256(k256::ecdsa::VerifyingKey),
    P256(p256::ecdsa::VerifyingKey),
}

/// An atproto public key (K-256 or P-256).
///
/// Equality and hashing compare the curve and the point. `Debug` and `Display` print the
/// `did:key`.
#[derive(Clone)]
pub struct PublicKey {
    inner: Verifying,
    compressed: [u8; 33],
}

/// How to treat high-S signatures.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Malleability {
    Reject,
    Normalize,
}

/// The one verification routine for both curves: parse, apply the low-S policy, verify.
/// (A macro rather than a generic function: the generic bounds need generic-array 0.14 traits
/// that are deprecated.)
macro_rules! verify_on_curve {
    ($signature:ty, $key:expr, $msg:expr, $sig:expr, $mode:expr, $curve:expr) => {{
        let curve = $curve;
        let sig = <$signature>::from_slice($sig)
            .map_err(|_| VerifyError::MalformedSignature { curve })?;
        let sig = match sig.normalize_s() {
            None => sig,
            Some(_) if $mode == Malleability::Reject => return Err(VerifyError::HighS { curve }),
            Some(low) => low,
        };
        $key.verify($msg, &sig)
            .map_err(|_| VerifyError::Mismatch { curve })
    }};
}

impl PublicKey {
    /// Parses a SEC1-encoded point: 33 bytes compressed (`02`/`03` prefix) or 65 bytes
    /// uncompressed (`04` prefix, as found in old DID documents).
    ///
    /// The identity point, hybrid encodings and points off the curve are errors.
    pub fn from_sec1_bytes(curve: Curve, bytes: &[u8]) -> Result<PublicKey, KeyError> {
        let well_formed = matches!(
            (bytes.first(), bytes.len()),
            (Some(0x02 | 0x03), 33) | (Some(0x04), 65)
        );
        if !well_formed {
            return Err(KeyError::InvalidPointEncoding {
                curve,
                len: bytes.len(),
            });
        }
        let invalid = |_| KeyError::InvalidPoint { curve };
        let inner = match curve {
            Curve::K256 => {
                Verifying::K256(k256::ecdsa::VerifyingKey::from_sec1_bytes(bytes).map_err(invalid)?)
            }
            Curve::P256 => {
                Verifying::P256(p256::ecdsa::VerifyingKey::from_sec1_bytes(bytes).map_err(invalid)?)
            }
        };
        PublicKey::from_verifying(inner).ok_or(KeyError::InvalidPoint { curve })
    }

    pub(crate) fn from_k256(key: k256::ecdsa::VerifyingKey) -> Option<PublicKey> {
        PublicKey::from_verifying(Verifying::K256(key))
    }

    pub(crate) fn from_p256(key: p256::ecdsa::VerifyingKey) -> Option<PublicKey> {
        PublicKey::from_verifying(Verifying::P256(key))
    }

    /// Caches the compressed form; `None` only for the identity point, which the curve crates
    /// never hand out as a verifying key.
    fn from_verifying(inner: Verifying) -> Option<PublicKey> {
        let point = match &inner {
            Verifying::K256(key) => key.to_encoded_point(true).as_bytes().to_vec(),
            Verifying::P256(key) => key.to_encoded_point(true).as_bytes().to_vec(),
        };
        let compressed = point.try_into().ok()?;
        Some(PublicKey { inner, compressed })
    }

    /// The key's curve.
    pub fn curve(&self) -> Curve {
        match self.inner {
            Verifying::K256(_) => Curve::K256,
            Verifying::P256(_) => Curve::P256,
        }
    }

    /// The 33-byte SEC1 compressed point (`02`/`03` ‖ x).
    pub fn to_compressed(&self) -> [u8; 33] {
        self.compressed
    }

    /// The 65-byte SEC1 uncompressed point (`04` ‖ x ‖ y), e.g. for a JWK's `x` and `y`.
    pub fn to_uncompressed(&self) -> [u8; 65] {
        let mut out = [0u8; 65];
        let point = match &self.inner {
            Verifying::K256(key) => key.to_encoded_point(false).as_bytes().to_vec(),
            Verifying::P256(key) => key.to_encoded_point(false).as_bytes().to_vec(),
        };
        if let Some(bytes) = point.get(..65) {
            out.copy_from_slice(bytes);
        }
        out
    }

    /// The JWT `alg` for signatures by this key: `"ES256K"` or `"ES256"`.
    pub fn jwt_alg(&self) -> &'static str {
        self.curve().jwt_alg()
    }

    /// Verifies an atproto signature strictly.
    ///
    /// `msg` is the signed data itself (it is hashed with SHA-256 here). `sig` must be exactly 64
    /// bytes `r ‖ s` with `s` in the lower half of the curve order: DER encodings and high-S
    /// signatures are errors, as the spec requires for repo commits and PLC operations.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), VerifyError> {
        self.verify_with(msg, sig, Malleability::Reject)
    }

    /// Verifies a signature, accepting high-S as well as low-S.
    ///
    /// For interop where the reference implementation is lenient (service-auth JWTs, where it
    /// passes `allowMalleableSig`). The signature must still be 64 bytes `r ‖ s`.
    pub fn verify_lenient(&self, msg: &[u8], sig: &[u8]) -> Result<(), VerifyError> {
        self.verify_with(msg, sig, Malleability::Normalize)
    }

    fn verify_with(&self, msg: &[u8], sig: &[u8], mode: Malleability) -> Result<(), VerifyError> {
        if sig.len() != 64 {
            return Err(VerifyError::SignatureLength {
                len: sig.len(),
                der_like: sig.first() == Some(&0x30),
            });
        }
        let curve = self.curve();
        match &self.inner {
            Verifying::K256(key) => {
                verify_on_curve!(k256::ecdsa::Signature, key, msg, sig, mode, curve)
            }
            Verifying::P256(key) => {
                verify_on_curve!(p256::ecdsa::Signature, key, msg, sig, mode, curve)
            }
        }
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.curve() == other.curve() && self.compressed == other.compressed
    }
}

impl Eq for PublicKey {}

impl Hash for PublicKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.curve().hash(state);
        self.compressed.hash(state);
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PublicKey").field(&self.did_key()).finish()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.did_key())
    }
}
