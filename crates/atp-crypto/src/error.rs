//! Error types: one per operation family (parsing keys, verifying, signing).
//!
//! No variant ever carries private key material.

use crate::Curve;

/// Why a key (or a curve name) could not be parsed or built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The curve name is not one of `k256`, `secp256k1`, `p256`, `p-256`, `secp256r1`.
    #[error("unknown curve {name:?} (expected k256 or p256)")]
    UnknownCurve {
        /// The name as given.
        name: String,
    },
    /// The string does not start with `did:key:`.
    #[error("not a did:key (missing the \"did:key:\" prefix)")]
    NotDidKey,
    /// The multibase string does not start with `z` (base58btc), or is empty.
    #[error("expected a base58btc multibase string starting with 'z', found {found:?}")]
    UnsupportedMultibase {
        /// The first character, if any.
        found: Option<char>,
    },
    /// The encoded key is longer than any key this crate knows (checked before decoding).
    #[error("encoded key is too long: {len} characters (at most {max})")]
    EncodingTooLong {
        /// Length of the input in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The base58btc payload is not valid base58 (Bitcoin alphabet).
    #[error("invalid base58btc: {source}")]
    Base58 {
        /// The decoder's complaint.
        #[source]
        source: bs58::decode::Error,
    },
    /// The multicodec varint prefix is missing, truncated or not minimally encoded.
    #[error("malformed multicodec prefix")]
    MalformedMulticodec,
    /// The multicodec names a key type other than `secp256k1-pub` (0xe7) or `p256-pub` (0x1200).
    #[error("unsupported multicodec 0x{code:x} (expected secp256k1-pub 0xe7 or p256-pub 0x1200)")]
    UnsupportedMulticodec {
        /// The decoded multicodec code.
        code: u64,
    },
    /// The bytes are not a SEC1 point encoding: 33 bytes starting 02/03 (compressed) or 65 bytes
    /// starting 04 (uncompressed).
    #[error(
        "{curve} public key must be 33 bytes (02/03 prefix) or 65 bytes (04 prefix), got {len} bytes"
    )]
    InvalidPointEncoding {
        /// The curve the key was read for.
        curve: Curve,
        /// Number of bytes given.
        len: usize,
    },
    /// The encoding is well-formed but the point is not on the curve.
    #[error("not a valid {curve} public key: point is not on the curve")]
    InvalidPoint {
        /// The curve the key was read for.
        curve: Curve,
    },
    /// The private key hex string is not valid hexadecimal.
    #[error("private key is not valid hex")]
    PrivateKeyHex,
    /// The private key is not exactly 32 bytes.
    #[error("private key must be 32 bytes, got {len}")]
    PrivateKeyLength {
        /// Number of bytes given.
        len: usize,
    },
    /// The private key is zero or not below the curve order.
    #[error("invalid {curve} private key: scalar is zero or not below the curve order")]
    InvalidPrivateKey {
        /// The curve the key was read for.
        curve: Curve,
    },
}

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The signature is not 64 bytes `r ‖ s` (a DER-encoded signature lands here).
    #[error("signature must be 64 bytes r||s, got {len} bytes{}", if *der_like { " (DER encoding is not accepted)" } else { "" })]
    SignatureLength {
        /// Number of bytes given.
        len: usize,
        /// Whether the bytes look like a DER `SEQUENCE` (first byte 0x30), as a hint.
        der_like: bool,
    },
    /// `r` or `s` is zero or not below the curve order.
    #[error("malformed {curve} signature: r or s is out of range")]
    MalformedSignature {
        /// The key's curve.
        curve: Curve,
    },
    /// `s` is in the upper half of the curve order; atproto requires low-S signatures.
    #[error("{curve} signature is high-S; atproto requires low-S signatures")]
    HighS {
        /// The key's curve.
        curve: Curve,
    },
    /// The signature is well-formed but does not match the message and key.
    #[error("{curve} signature does not match the message and key")]
    Mismatch {
        /// The key's curve.
        curve: Curve,
    },
}

/// Why a [`crate::Signer`] could not produce a signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The signing backend (e.g. a remote signer or HSM) is unreachable or refused the request.
    #[error("signer unavailable: {reason}")]
    Unavailable {
        /// A human-readable reason, without secrets.
        reason: String,
    },
    /// The backend returned a signature that its own public key does not accept.
    #[error("signer returned an unusable signature: {source}")]
    BadSignature {
        /// Why the signature was refused.
        #[source]
        source: VerifyError,
    },
}
