//! AT Protocol identity, the pure part: DID documents, `did:plc` operations and audit logs,
//! handle rules, and inter-service auth tokens.
//!
//! What this crate owns:
//! - [`did_doc`]: parsing DID documents and extracting the atproto data from them (the `#atproto`
//!   signing key, the `#atproto_pds` endpoint, the handle), and rendering a document from PLC data.
//! - [`plc`]: `did:plc` operations (build, sign, verify, CID, DID derivation) and audit-log
//!   validation, for clients of a PLC directory and for the directory itself.
//! - [`handle`]: handle resolution rules that need no network (DNS TXT values, the
//!   `/.well-known/atproto-did` body, the bidirectional check) and the [`handle::Resolver`] seam.
//! - [`service_auth`]: inter-service JWTs (`ES256K` / `ES256`), created and verified here over
//!   `atp-crypto`.
//! - `resolve` (feature `http`): the network side: a PLC directory client, `did:web` and
//!   handle resolution with an SSRF guard, and a caching [`handle::Resolver`] implementation.
//!
//! What the pure part deliberately does not own: networking. Fetching DID documents, querying DNS
//! and talking to a PLC directory live behind the `http` feature; everything else takes the
//! fetched bytes, and the current time, as arguments.
//!
//! Specs: <https://atproto.com/specs/did>, <https://atproto.com/specs/handle>,
//! <https://atproto.com/specs/xrpc#inter-service-authentication-jwt>,
//! <https://web.plc.directory/spec/v0.1/did-plc>.
#![deny(clippy::unwrap_used, clippy::panic, clippy::print_stdout)]
#![warn(missing_docs)]

mod b64url;
pub mod did_doc;
#[cfg(test)]
mod fixtures;
pub mod handle;
pub mod plc;
#[cfg(feature = "http")]
pub mod resolve;
pub mod service_auth;

pub use did_doc::{DidDocError, DidDocument};
pub use handle::{HandleError, ResolveError, Resolver};
pub use plc::{PlcData, PlcState};
pub use service_auth::{AuthError, Claims, ExpectedClaims};
