//! AT Protocol keys: P-256 and secp256k1 (K-256) ECDSA with the atproto low-S rule, the `did:key`,
//! multikey and legacy multibase encodings of public keys, and the [`Signer`] seam.
//!
//! Spec: <https://atproto.com/specs/cryptography> and the `did:key` section of
//! <https://atproto.com/specs/did>.
//!
//! What this crate owns:
//! - [`Curve`]: the two supported curves and their names, multicodec codes and JWT `alg` values.
//! - [`PublicKey`]: parsing (SEC1 bytes, `did:key`, multikey, legacy `publicKeyMultibase`),
//!   formatting, and signature verification, strict ([`PublicKey::verify`]) or lenient about
//!   high-S ([`PublicKey::verify_lenient`]).
//! - [`Keypair`]: generation, import and export of the private scalar, and signing (SHA-256 inside
//!   ECDSA, always low-S). The private scalar is zeroized on drop and never printed.
//! - [`Signer`]: the trait other crates sign through, so a remote signer can replace a [`Keypair`].
//!
//! What it deliberately does not own: DID documents and PLC operations (`atp-identity`), JWTs
//! and the JWS envelope (`pds`), and the encoding of the bytes being signed (callers hash nothing
//! themselves: they pass the exact bytes, e.g. a DAG-CBOR commit, and SHA-256 happens here).
//!
//! Tricky bits:
//! - atproto requires low-S signatures on both curves. `k256` signs low-S and its verifier rejects
//!   high-S; `p256` may sign high-S and its verifier accepts high-S. This crate normalises after
//!   signing and checks `s` itself before verifying, so both curves behave the same.
//! - Signatures are exactly 64 bytes `r ‖ s` (big-endian). DER-encoded signatures are refused,
//!   even by the lenient verifier (JWS ES256/ES256K signatures are `r ‖ s` by RFC 7518).
//! - Old DID documents carry uncompressed points; they are accepted on input, and everything this
//!   crate emits uses the 33-byte compressed form.
#![deny(clippy::unwrap_used, clippy::panic, clippy::print_stdout)]
#![warn(missing_docs)]

mod curve;
mod did_key;
mod error;
mod keypair;
mod public_key;
mod signer;

pub use curve::Curve;
pub use error::{KeyError, SignError, VerifyError};
pub use keypair::Keypair;
pub use public_key::PublicKey;
pub use signer::Signer;
/// Re-exported because [`zeroize::Zeroizing`] appears in [`Keypair`]'s API.
pub use zeroize;
