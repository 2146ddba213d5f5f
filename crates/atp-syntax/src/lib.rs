//! AT Protocol identifiers and Lexicon string formats as parse-only newtypes.
//!
//! This crate owns the *syntax* of [`Did`], [`Handle`], [`Nsid`], [`RecordKey`], [`Tid`] (and the
//! [`TidClock`] that issues them), [`AtIdentifier`], [`AtUri`], [`Datetime`], [`Language`],
//! [`CidString`] and [`Uri`]. Each type has a private field and is built only through its parser
//! (`FromStr`, `TryFrom<String>`, `TryFrom<&str>`, and serde, which goes through the same parser),
//! so holding one means the string was checked. Values are kept exactly as written; the few
//! normalisations are explicit methods ([`Handle::normalized`]). Every refusal is a
//! [`SyntaxError`] naming the [`Kind`] and a typed [`Reason`]. No parser panics, whatever the input.
//!
//! It deliberately does not: resolve anything (DIDs, handles: `atp-identity`), decode CIDs
//! (`atp-data`), apply policy (which DID methods or TLDs are allowed, which record keys a
//! collection takes: the Lexicon and identity layers), or read the clock (a TID's time is an
//! argument of [`TidClock::next`]).
//!
//! Specs: <https://atproto.com/specs/did>, <https://atproto.com/specs/handle>,
//! <https://atproto.com/specs/nsid>, <https://atproto.com/specs/record-key>,
//! <https://atproto.com/specs/tid>, <https://atproto.com/specs/at-uri-scheme>,
//! <https://atproto.com/specs/lexicon#string-formats>. The conformance vectors are the upstream
//! interop files under `tests/vectors/syntax/` (see `tests/interop.rs`).
#![deny(clippy::unwrap_used, clippy::panic, clippy::print_stdout)]

#[macro_use]
mod newtype;

mod at_identifier;
mod at_uri;
mod cid;
mod datetime;
mod did;
mod domain;
mod error;
mod handle;
mod language;
mod nsid;
mod record_key;
mod tid;
mod uri;

pub use at_identifier::AtIdentifier;
pub use at_uri::{AtUri, MAX_AT_URI_LEN};
pub use cid::{CidString, MAX_CID_LEN, MIN_CID_LEN};
pub use datetime::{Datetime, MAX_DATETIME_LEN};
pub use did::{Did, MAX_DID_LEN};
pub use error::{Kind, Reason, SyntaxError};
pub use handle::{Handle, MAX_HANDLE_LEN};
pub use language::{Language, MAX_LANGUAGE_LEN};
pub use nsid::{MAX_NSID_LEN, Nsid};
pub use record_key::{MAX_RECORD_KEY_LEN, RecordKey};
pub use tid::{MAX_CLOCK_ID, MAX_TID_MICROS, TID_LEN, Tid, TidClock};
pub use uri::{MAX_URI_LEN, Uri};
