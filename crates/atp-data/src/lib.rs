//! The AT Protocol data model.
//!
//! This crate owns the in-memory value type of atproto records ([`Value`]), its two wire forms
//! (strict DAG-CBOR in [`cbor`], atproto JSON in [`json`]), content identifiers ([`cid`]),
//! blob references ([`blob`]) and the CARv1 container ([`car`]).
//!
//! It deliberately knows nothing about repositories, lexicons, HTTP or SQL.
//!
//! Specs: <https://atproto.com/specs/data-model>, <https://atproto.com/specs/repository#car-file-serialization>,
//! DAG-CBOR: <https://ipld.io/specs/codecs/dag-cbor/spec/>.
#![deny(clippy::unwrap_used, clippy::panic, clippy::print_stdout)]

pub mod blob;
pub mod car;
pub mod cbor;
pub mod cid;
pub mod json;
mod value;

pub use crate::cid::{Cid, CidError};
pub use value::Value;
