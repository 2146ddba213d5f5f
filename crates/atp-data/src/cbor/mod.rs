//! Strict DAG-CBOR, the canonical binary form of atproto data.
//!
//! Encoding is canonical by construction: minimal integer and length headers, map keys sorted
//! length-first then bytewise, CIDs as tag 42 over `0x00 ‖ cid bytes`, no floats, no indefinite lengths.
//! Decoding ([`from_slice`]) is the exact inverse: it accepts only what the encoder would write, so
//! a decoded value re-encodes to the same bytes and hence the same CID.
//!
//! Tricky bits:
//! - DAG-CBOR's key order ("length-first, then bytewise") is the bytewise order of the *encoded* keys,
//!   because the header carries the length. It is not the order of a `BTreeMap<String, _>`.
//! - atproto forbids floats in its data model, so [`Value`](crate::Value) has none and the decoder
//!   refuses them with [`DecodeError::Float`].
//! - Event-stream frames are two values back to back; use [`from_slice_prefix`] for the header.

mod decode;
mod encode;

/// CBOR major types (the top three bits of an item's first byte), shared by the encoder and decoder.
const MAJOR_UINT: u8 = 0;
const MAJOR_NINT: u8 = 1;
const MAJOR_BYTES: u8 = 2;
const MAJOR_TEXT: u8 = 3;
const MAJOR_ARRAY: u8 = 4;
const MAJOR_MAP: u8 = 5;
const MAJOR_TAG: u8 = 6;
/// The CBOR tag DAG-CBOR uses for CID links.
const TAG_CID: u64 = 42;

pub use decode::{
    DecodeError, InsertError, LinkError, MAX_DEPTH, from_slice, from_slice_prefix,
    insert_map_entries, validate,
};
pub use encode::{Encoder, to_vec};
