//! Runtime Lexicon validation: schema documents loaded from JSON into a [`Catalog`], and
//! validators for records, XRPC query parameters and XRPC JSON bodies.
//!
//! The catalog is built from the Lexicon JSON files themselves (no generated structs), so a new
//! or changed schema takes effect by adding the file. Values are checked through the [`Node`]
//! view, implemented for the data model ([`atp_data::Value`], records) and for atproto JSON
//! ([`serde_json::Value`], request bodies), so a body is validated where it was parsed.
//!
//! Checked: types, required and nullable properties, string formats (through `atp-syntax`),
//! `maxLength`/`minLength` (UTF-8 bytes for strings, bytes for `bytes`, elements for arrays),
//! `maxGraphemes`/`minGraphemes`, integer `minimum`/`maximum`, `enum` and `const`, blob `accept`
//! (with `type/*` wildcards) and `maxSize` against the declared reference, open and closed
//! unions (members need `$type`; an open union accepts types it does not list), refs (local
//! `#name`, `nsid`, `nsid#name`), and `unknown` (any object). `knownValues` is advice and is not
//! enforced. Errors carry the failing path (`Record/embed/images/0/alt`) and read like the
//! reference implementation's (`Input/text must not be longer than 300 graphemes`).
//!
//! It deliberately does not: know HTTP or SQL, fetch schemas over the network, apply defaults to
//! values (validation never changes the value), or validate outputs and event-stream messages.
//! Nesting and ref chains are bounded ([`MAX_DEPTH`]), so no input or schema cycle can overflow
//! the stack.
//!
//! Spec: <https://atproto.com/specs/lexicon>. Vectors: `tests/vectors/lexicon/` (see
//! `tests/interop.rs`).
#![deny(clippy::unwrap_used, clippy::panic, clippy::print_stdout)]

mod catalog;
mod error;
mod node;
mod parse;
mod schema;
mod validate;

pub use catalog::{Catalog, RecordValidity};
pub use error::{Format, LexError, LexErrorKind, LoadError, SchemaError, SchemaReason};
pub use node::{Node, Shape};
pub use validate::MAX_DEPTH;
