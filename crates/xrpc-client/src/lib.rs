//! A small typed XRPC client for the PDS's outbound calls (operator CLI, crawlers, migration,
//! service proxying).
//!
//! It owns the XRPC HTTP conventions (<https://atproto.com/specs/xrpc>): `GET /xrpc/{nsid}` with
//! query parameters (arrays as repeated keys) for queries, `POST /xrpc/{nsid}` with a JSON or
//! raw body for procedures, the `{"error", "message"}` error body, bearer or basic credentials
//! and extra headers such as `atproto-proxy`, a size cap on buffered JSON responses, and
//! streamed (unbuffered) uploads and downloads for CARs and blobs.
//!
//! It deliberately does not own: lexicon wire types (callers bring their own `Serialize` /
//! `Deserialize` types), session management (token refresh is the caller's job), service-auth
//! JWT minting, identity resolution (callers pass the base URL of an already-resolved host),
//! retries, or event-stream (websocket) subscriptions.

#![deny(clippy::unwrap_used, clippy::panic, clippy::print_stdout)]

mod client;
mod error;
mod params;

pub use client::{ByteStream, DEFAULT_MAX_JSON_BYTES, DEFAULT_TIMEOUT, XrpcClient};
pub use error::XrpcError;
pub use reqwest::header::HeaderMap;
pub use reqwest::{Body, StatusCode};
