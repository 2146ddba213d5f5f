//! Strict DAG-CBOR decoder.
//!
//! Accepts exactly the canonical encodings that [`to_vec`](super::to_vec) produces, so that
//! `to_vec(from_slice(b)?) == b` for every accepted input. Everything else is refused with a
//! [`DecodeError`] carrying the byte offset of the offending item.

use std::collections::BTreeMap;

use super::{
    MAJOR_ARRAY, MAJOR_BYTES, MAJOR_MAP, MAJOR_NINT, MAJOR_TAG, MAJOR_TEXT, MAJOR_UINT, TAG_CID,
};
use crate::{CidError, Value};

/// How deeply arrays and maps may nest (the top-level container is depth 1).
pub const MAX_DEPTH: usize = 128;

/// Why DAG-CBOR input was refused. Every variant carries the offset of the item's first byte.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended inside an item.
    #[error("unexpected end of input at offset {offset}")]
    UnexpectedEof {
        /// Where more bytes were needed.
        offset: usize,
    },
    /// A length or count announces more than the rest of the input could hold.
    #[error(
        "declared length {declared} at offset {offset} exceeds the {remaining} remaining bytes"
    )]
    LengthExceedsInput {
        /// Offset of the header.
        offset: usize,
        /// The declared length or item count.
        declared: u64,
        /// Bytes left after the header.
        remaining: usize,
    },
    /// Bytes follow the single top-level value.
    #[error("{count} trailing bytes after the value, at offset {offset}")]
    TrailingBytes {
        /// Where the trailing bytes start.
        offset: usize,
        /// How many there are.
        count: usize,
    },
    /// An integer, length or tag is not written in its shortest form.
    #[error("non-minimal integer or length encoding at offset {offset}")]
    NonMinimal {
        /// Offset of the header.
        offset: usize,
    },
    /// An indefinite-length string, array or map, or a stray "break" byte.
    #[error("indefinite-length item at offset {offset}")]
    IndefiniteLength {
        /// Offset of the header.
        offset: usize,
    },
    /// A header byte with a reserved additional-information value (28–30, or 31 on a number or tag).
    #[error("malformed header byte {byte:#04x} at offset {offset}")]
    MalformedHeader {
        /// Offset of the header.
        offset: usize,
        /// The header byte.
        byte: u8,
    },
    /// A half, single or double precision float: the atproto data model has no floats.
    #[error("float at offset {offset}: the atproto data model forbids floats")]
    Float {
        /// Offset of the float.
        offset: usize,
    },
    /// A simple value other than `false`, `true` and `null` (including `undefined`).
    #[error("unsupported simple value {value} at offset {offset}")]
    UnsupportedSimple {
        /// Offset of the item.
        offset: usize,
        /// The simple value number.
        value: u8,
    },
    /// An integer outside the 64-bit signed range.
    #[error("integer at offset {offset} does not fit in a signed 64-bit integer")]
    IntegerOutOfRange {
        /// Offset of the integer.
        offset: usize,
    },
    /// A text string that is not valid UTF-8.
    #[error("invalid UTF-8 in text string at offset {offset}")]
    InvalidUtf8 {
        /// Offset of the string header.
        offset: usize,
    },
    /// A map key that is not a text string.
    #[error("map key at offset {offset} is not a text string")]
    NonStringKey {
        /// Offset of the key.
        offset: usize,
    },
    /// Map keys not in DAG-CBOR order (shorter first, then bytewise).
    #[error("map key {key:?} at offset {offset} is out of canonical order")]
    KeyOrder {
        /// Offset of the key.
        offset: usize,
        /// The key.
        key: String,
    },
    /// The same key twice in one map.
    #[error("duplicate map key {key:?} at offset {offset}")]
    DuplicateKey {
        /// Offset of the second occurrence.
        offset: usize,
        /// The key.
        key: String,
    },
    /// A tag other than 42.
    #[error("unsupported tag {tag} at offset {offset}: DAG-CBOR allows only tag 42")]
    UnsupportedTag {
        /// Offset of the tag.
        offset: usize,
        /// The tag number.
        tag: u64,
    },
    /// Tag 42 whose content is not a byte string of `0x00 ‖ CID bytes`.
    #[error("invalid CID link at offset {offset}: {reason}")]
    InvalidLink {
        /// Offset of the tag.
        offset: usize,
        /// What was wrong.
        reason: LinkError,
    },
    /// Arrays and maps nested deeper than [`MAX_DEPTH`].
    #[error("nesting deeper than {limit} at offset {offset}")]
    TooDeep {
        /// Offset of the container that went over the limit.
        offset: usize,
        /// The limit.
        limit: usize,
    },
}

/// What was wrong with a tag-42 link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The tag content is not a byte string.
    #[error("tag 42 content is not a byte string")]
    NotBytes,
    /// The byte string does not start with the `0x00` multibase prefix.
    #[error("missing 0x00 prefix")]
    MissingPrefix,
    /// The bytes after the prefix are not a CID.
    #[error("{0}")]
    Cid(CidError),
}

impl DecodeError {
    /// The byte offset the error refers to.
    pub fn offset(&self) -> usize {
        match self {
            DecodeError::UnexpectedEof { offset }
            | DecodeError::LengthExceedsInput { offset, .. }
            | DecodeError::TrailingBytes { offset, .. }
            | DecodeError::NonMinimal { offset }
            | DecodeError::IndefiniteLength { offset }
            | DecodeError::MalformedHeader { offset, .. }
            | DecodeError::Float { offset }
            | DecodeError::UnsupportedSimple { offset, .. }
            | DecodeError::IntegerOutOfRange { offset }
            | DecodeError::InvalidUtf8 { offset }
            | DecodeError::NonStringKey { offset }
            | DecodeError::KeyOrder { offset, .. }
            | DecodeError::DuplicateKey { offset, .. }
            | DecodeError::UnsupportedTag { offset, .. }
            | DecodeError::InvalidLink { offset, .. }
            | DecodeError::TooDeep { offset, .. } => *offset,
        }
    }
}

/// Decodes exactly one DAG-CBOR value that must span the whole input.
///
/// Strict: non-canonical encodings, floats, tags other than 42 and trailing bytes are errors.
pub fn from_slice(bytes: &[u8]) -> Result<Value, DecodeError> {
    let (value, used) = from_slice_prefix(bytes)?;
    if used != bytes.len() {
        return Err(DecodeError::TrailingBytes {
            offset: used,
            count: bytes.len() - used,
        });
    }
    Ok(value)
}

/// Decodes one DAG-CBOR value from the start of the input and returns it with the number of bytes
/// it used; the rest is left to the caller (event-stream frames are `header ‖ body`).
pub fn from_slice_prefix(bytes: &[u8]) -> Result<(Value, usize), DecodeError> {
    let mut decoder = Decoder {
        data: bytes,
        pos: 0,
    };
    let value = decoder.value(0)?;
    Ok((value, decoder.pos))
}

/// One decoded item header: major type, argument, and where it started.
#[derive(Debug, Clone, Copy)]
struct Header {
    major: u8,
    /// The additional-information bits (low 5 bits of the initial byte).
    info: u8,
    arg: u64,
    offset: usize,
}

struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(DecodeError::UnexpectedEof { offset: self.pos })?;
        let slice = self
            .data
            .get(self.pos..end)
            .ok_or(DecodeError::UnexpectedEof { offset: self.pos })?;
        self.pos = end;
        Ok(slice)
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self
            .data
            .get(self.pos)
            .ok_or(DecodeError::UnexpectedEof { offset: self.pos })?;
        self.pos += 1;
        Ok(b)
    }

    fn be_uint(&mut self, n: usize) -> Result<u64, DecodeError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// Reads an item header. Floats and simple values (major 7) are returned raw with `arg` unset
    /// (the caller interprets `info`); every other header is checked for minimal encoding.
    fn header(&mut self) -> Result<Header, DecodeError> {
        let offset = self.pos;
        let byte = self.byte()?;
        let major = byte >> 5;
        let info = byte & 0x1f;
        if major == 7 {
            return Ok(Header {
                major,
                info,
                arg: 0,
                offset,
            });
        }
        let (arg, minimum) = match info {
            0..=23 => (u64::from(info), 0),
            24 => (self.be_uint(1)?, 24),
            25 => (self.be_uint(2)?, 0x100),
            26 => (self.be_uint(4)?, 0x1_0000),
            27 => (self.be_uint(8)?, 0x1_0000_0000),
            31 if matches!(major, MAJOR_BYTES..=MAJOR_MAP) => {
                return Err(DecodeError::IndefiniteLength { offset });
            }
            _ => return Err(DecodeError::MalformedHeader { offset, byte }),
        };
        if arg < minimum {
            return Err(DecodeError::NonMinimal { offset });
        }
        Ok(Header {
            major,
            info,
            arg,
            offset,
        })
    }

    /// Converts a declared length into `usize`, refusing anything the rest of the input cannot hold.
    fn length(&self, header: Header) -> Result<usize, DecodeError> {
        let remaining = self.remaining();
        match usize::try_from(header.arg) {
            Ok(len) if len <= remaining => Ok(len),
            _ => Err(DecodeError::LengthExceedsInput {
                offset: header.offset,
                declared: header.arg,
                remaining,
            }),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        let header = self.header()?;
        match header.major {
            MAJOR_UINT => i64::try_from(header.arg).map(Value::Integer).map_err(|_| {
                DecodeError::IntegerOutOfRange {
                    offset: header.offset,
                }
            }),
            MAJOR_NINT => i64::try_from(header.arg)
                .map(|n| Value::Integer(-1 - n))
                .map_err(|_| DecodeError::IntegerOutOfRange {
                    offset: header.offset,
                }),
            MAJOR_BYTES => {
                let len = self.length(header)?;
                Ok(Value::Bytes(self.take(len)?.to_vec()))
            }
            MAJOR_TEXT => self.text_body(header).map(Value::String),
            MAJOR_ARRAY => self.array(header, depth + 1),
            MAJOR_MAP => self.map(header, depth + 1),
            MAJOR_TAG => self.link(header),
            _ => simple(header),
        }
    }

    fn text_body(&mut self, header: Header) -> Result<String, DecodeError> {
        let len = self.length(header)?;
        let raw = self.take(len)?;
        utf8(raw, header.offset)
    }

    fn check_depth(header: Header, depth: usize) -> Result<(), DecodeError> {
        if depth > MAX_DEPTH {
            return Err(DecodeError::TooDeep {
                offset: header.offset,
                limit: MAX_DEPTH,
            });
        }
        Ok(())
    }

    fn array(&mut self, header: Header, depth: usize) -> Result<Value, DecodeError> {
        Self::check_depth(header, depth)?;
        // Every item takes at least one byte, so a count beyond the remaining input is a lie.
        let count = self.length(header)?;
        // Decoded values are far larger than their one-byte minimum, so cap what is reserved up front.
        let mut items = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            items.push(self.value(depth)?);
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, header: Header, depth: usize) -> Result<Value, DecodeError> {
        Self::check_depth(header, depth)?;
        // Every entry takes at least two bytes.
        let count = self.length(header)?;
        let mut map = BTreeMap::new();
        let mut previous: Option<&'a [u8]> = None;
        for _ in 0..count {
            let key_header = self.header()?;
            if key_header.major != MAJOR_TEXT {
                return Err(DecodeError::NonStringKey {
                    offset: key_header.offset,
                });
            }
            let len = self.length(key_header)?;
            let raw = self.take(len)?;
            let key = utf8(raw, key_header.offset)?;
            if let Some(prev) = previous {
                // DAG-CBOR order: shorter keys first, then bytewise.
                match (prev.len(), prev).cmp(&(raw.len(), raw)) {
                    std::cmp::Ordering::Less => {}
                    std::cmp::Ordering::Equal => {
                        return Err(DecodeError::DuplicateKey {
                            offset: key_header.offset,
                            key,
                        });
                    }
                    std::cmp::Ordering::Greater => {
                        return Err(DecodeError::KeyOrder {
                            offset: key_header.offset,
                            key,
                        });
                    }
                }
            }
            previous = Some(raw);
            let item = self.value(depth)?;
            map.insert(key, item);
        }
        Ok(Value::Map(map))
    }

    fn link(&mut self, header: Header) -> Result<Value, DecodeError> {
        let offset = header.offset;
        if header.arg != TAG_CID {
            return Err(DecodeError::UnsupportedTag {
                offset,
                tag: header.arg,
            });
        }
        let content = self.header()?;
        if content.major != MAJOR_BYTES {
            return Err(DecodeError::InvalidLink {
                offset,
                reason: LinkError::NotBytes,
            });
        }
        let len = self.length(content)?;
        let raw = self.take(len)?;
        let Some((0, cid_bytes)) = raw.split_first() else {
            return Err(DecodeError::InvalidLink {
                offset,
                reason: LinkError::MissingPrefix,
            });
        };
        crate::cid::from_bytes(cid_bytes)
            .map(Value::Link)
            .map_err(|e| DecodeError::InvalidLink {
                offset,
                reason: LinkError::Cid(e),
            })
    }
}

impl<'a> Decoder<'a> {
    /// Checks one item exactly as [`Decoder::value`] would, without building it: the same
    /// refusals, no allocation.
    fn skip(&mut self, depth: usize) -> Result<(), DecodeError> {
        let header = self.header()?;
        match header.major {
            MAJOR_UINT | MAJOR_NINT => {
                if i64::try_from(header.arg).is_err() {
                    return Err(DecodeError::IntegerOutOfRange {
                        offset: header.offset,
                    });
                }
            }
            MAJOR_BYTES => {
                let len = self.length(header)?;
                self.take(len)?;
            }
            MAJOR_TEXT => {
                let len = self.length(header)?;
                let raw = self.take(len)?;
                if std::str::from_utf8(raw).is_err() {
                    return Err(DecodeError::InvalidUtf8 {
                        offset: header.offset,
                    });
                }
            }
            MAJOR_ARRAY => {
                Self::check_depth(header, depth + 1)?;
                for _ in 0..self.length(header)? {
                    self.skip(depth + 1)?;
                }
            }
            MAJOR_MAP => {
                Self::check_depth(header, depth + 1)?;
                let mut previous = None;
                for _ in 0..self.length(header)? {
                    let (key, _) = self.map_key(previous)?;
                    previous = Some(key);
                    self.skip(depth + 1)?;
                }
            }
            MAJOR_TAG => {
                self.link(header)?;
            }
            _ => {
                simple(header)?;
            }
        }
        Ok(())
    }

    /// Reads a map key (a text string) and checks it sorts after `previous`; returns the raw key
    /// and the offset of its header.
    fn map_key(&mut self, previous: Option<&[u8]>) -> Result<(&'a [u8], usize), DecodeError> {
        let key_header = self.header()?;
        if key_header.major != MAJOR_TEXT {
            return Err(DecodeError::NonStringKey {
                offset: key_header.offset,
            });
        }
        let len = self.length(key_header)?;
        let raw = self.take(len)?;
        if std::str::from_utf8(raw).is_err() {
            return Err(DecodeError::InvalidUtf8 {
                offset: key_header.offset,
            });
        }
        if let Some(prev) = previous {
            match key_order(prev, raw) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => {
                    return Err(DecodeError::DuplicateKey {
                        offset: key_header.offset,
                        key: String::from_utf8_lossy(raw).into_owned(),
                    });
                }
                std::cmp::Ordering::Greater => {
                    return Err(DecodeError::KeyOrder {
                        offset: key_header.offset,
                        key: String::from_utf8_lossy(raw).into_owned(),
                    });
                }
            }
        }
        Ok((raw, key_header.offset))
    }
}

/// DAG-CBOR key order: shorter keys first, then bytewise.
fn key_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    (a.len(), a).cmp(&(b.len(), b))
}

/// Checks that `bytes` is exactly one DAG-CBOR value, with the same refusals as [`from_slice`],
/// without building it (no allocation).
pub fn validate(bytes: &[u8]) -> Result<(), DecodeError> {
    let mut decoder = Decoder {
        data: bytes,
        pos: 0,
    };
    decoder.skip(0)?;
    if decoder.pos != bytes.len() {
        return Err(DecodeError::TrailingBytes {
            offset: decoder.pos,
            count: bytes.len() - decoder.pos,
        });
    }
    Ok(())
}

/// Why [`insert_map_entries`] refused its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InsertError {
    /// The input is not canonical DAG-CBOR.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The input is a value other than a map.
    #[error("not a map")]
    NotAMap,
    /// A key to insert is already in the map (or given twice).
    #[error("key {0:?} is already in the map")]
    Exists(String),
    /// A value to insert is not one canonical DAG-CBOR value.
    #[error("the value of {key:?} is not canonical DAG-CBOR: {error}")]
    BadValue {
        /// The key.
        key: String,
        /// What was wrong.
        error: DecodeError,
    },
}

/// Appends to `out` the encoded map `map` with `entries` (key, encoded value) added in canonical
/// key order, without decoding the map's values: its other entries are checked (as strictly as
/// [`from_slice`]) and copied as they are. This is how event-stream frames get `seq` and `time`
/// added to a stored body without re-encoding its `blocks`.
pub fn insert_map_entries(
    map: &[u8],
    entries: &[(&str, &[u8])],
    out: &mut Vec<u8>,
) -> Result<(), InsertError> {
    let mut new: Vec<(&str, &[u8])> = entries.to_vec();
    new.sort_by(|a, b| key_order(a.0.as_bytes(), b.0.as_bytes()));
    for pair in new.windows(2) {
        if pair[0].0 == pair[1].0 {
            return Err(InsertError::Exists(pair[0].0.to_owned()));
        }
    }
    for (key, value) in &new {
        validate(value).map_err(|error| InsertError::BadValue {
            key: (*key).to_owned(),
            error,
        })?;
    }
    let start = out.len();
    let result = insert_into(map, new, out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn insert_into(map: &[u8], new: Vec<(&str, &[u8])>, out: &mut Vec<u8>) -> Result<(), InsertError> {
    let mut d = Decoder { data: map, pos: 0 };
    let header = d.header()?;
    if header.major != MAJOR_MAP {
        // Report a malformed value as such rather than as "not a map".
        d.pos = 0;
        d.skip(0)?;
        return Err(InsertError::NotAMap);
    }
    let count = d.length(header)?;
    super::Encoder::new(out).map(count + new.len());
    let mut pending = new.into_iter().peekable();
    let mut previous: Option<&[u8]> = None;
    for _ in 0..count {
        let entry_start = d.pos;
        let (key, _) = d.map_key(previous)?;
        while let Some((k, v)) = pending.next_if(|(k, _)| key_order(k.as_bytes(), key).is_lt()) {
            super::Encoder::new(out).str(k);
            out.extend_from_slice(v);
        }
        if pending.peek().is_some_and(|(k, _)| k.as_bytes() == key) {
            return Err(InsertError::Exists(
                String::from_utf8_lossy(key).into_owned(),
            ));
        }
        previous = Some(key);
        d.skip(1)?;
        out.extend_from_slice(&map[entry_start..d.pos]);
    }
    if d.pos != map.len() {
        return Err(DecodeError::TrailingBytes {
            offset: d.pos,
            count: map.len() - d.pos,
        }
        .into());
    }
    for (k, v) in pending {
        super::Encoder::new(out).str(k);
        out.extend_from_slice(v);
    }
    Ok(())
}

fn utf8(raw: &[u8], offset: usize) -> Result<String, DecodeError> {
    std::str::from_utf8(raw)
        .map(str::to_owned)
        .map_err(|_| DecodeError::InvalidUtf8 { offset })
}

/// Interprets a major-7 header: only `false`, `true` and `null` are data-model values.
fn simple(header: Header) -> Result<Value, DecodeError> {
    let offset = header.offset;
    match header.info {
        20 => Ok(Value::Bool(false)),
        21 => Ok(Value::Bool(true)),
        22 => Ok(Value::Null),
        25..=27 => Err(DecodeError::Float { offset }),
        31 => Err(DecodeError::IndefiniteLength { offset }),
        28..=30 => Err(DecodeError::MalformedHeader {
            offset,
            byte: 0xe0 | header.info,
        }),
        // 0..=19 unassigned, 23 undefined, 24 one-byte simple value: none is in the data model.
        value => Err(DecodeError::UnsupportedSimple { offset, value }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cbor::to_vec;

    fn err(bytes: &[u8]) -> DecodeError {
        from_slice(bytes).expect_err("must be refused")
    }

    #[test]
    fn scalars() {
        assert_eq!(from_slice(&[0xf6]).unwrap(), Value::Null);
        assert_eq!(from_slice(&[0xf5]).unwrap(), Value::Bool(true));
        assert_eq!(from_slice(&[0x18, 24]).unwrap(), Value::Integer(24));
        assert_eq!(from_slice(&[0x38, 24]).unwrap(), Value::Integer(-25));
        let min = [0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(from_slice(&min).unwrap(), Value::Integer(i64::MIN));
    }

    #[test]
    fn integer_range() {
        let too_big = [0x1b, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(
            err(&too_big),
            DecodeError::IntegerOutOfRange { offset: 0 }
        ));
        let too_small = [0x3b, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(
            err(&too_small),
            DecodeError::IntegerOutOfRange { offset: 0 }
        ));
    }

    #[test]
    fn non_minimal() {
        for bytes in [
            &[0x18, 23][..],
            &[0x19, 0x00, 0xff],
            &[0x1a, 0, 0, 0xff, 0xff],
            &[0x1b, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
            &[0x78, 1, b'a'],
            &[0x98, 0],
        ] {
            assert!(
                matches!(err(bytes), DecodeError::NonMinimal { offset: 0 }),
                "{bytes:x?}"
            );
        }
    }

    #[test]
    fn refusals() {
        assert!(matches!(
            err(&[0x9f, 0xff]),
            DecodeError::IndefiniteLength { .. }
        ));
        assert!(matches!(err(&[0xff]), DecodeError::IndefiniteLength { .. }));
        assert!(matches!(err(&[0xf9, 0, 0]), DecodeError::Float { .. }));
        assert!(matches!(
            err(&[0xf7]),
            DecodeError::UnsupportedSimple { value: 23, .. }
        ));
        assert!(matches!(
            err(&[0xc1, 0]),
            DecodeError::UnsupportedTag { tag: 1, .. }
        ));
        assert!(matches!(err(&[0x1c]), DecodeError::MalformedHeader { .. }));
        assert!(matches!(
            err(&[0x62, 0xff, 0xfe]),
            DecodeError::InvalidUtf8 { .. }
        ));
        assert!(matches!(
            err(&[0xa1, 0x01, 0x01]),
            DecodeError::NonStringKey { offset: 1 }
        ));
        assert!(matches!(
            err(&[0x00, 0x00]),
            DecodeError::TrailingBytes {
                offset: 1,
                count: 1
            }
        ));
        assert!(matches!(
            err(&[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            DecodeError::LengthExceedsInput { .. }
        ));
        assert!(matches!(
            err(&[0x9a, 0xff, 0xff, 0xff, 0xff]),
            DecodeError::LengthExceedsInput { .. }
        ));
    }

    #[test]
    fn key_order_and_duplicates() {
        // {"b": 1, "aa": 2} is canonical; {"aa": 2, "b": 1} is not.
        assert!(from_slice(&[0xa2, 0x61, b'b', 1, 0x62, b'a', b'a', 2]).is_ok());
        assert!(matches!(
            err(&[0xa2, 0x62, b'a', b'a', 2, 0x61, b'b', 1]),
            DecodeError::KeyOrder { offset: 5, .. }
        ));
        assert!(matches!(
            err(&[0xa2, 0x61, b'a', 1, 0x61, b'a', 2]),
            DecodeError::DuplicateKey { offset: 4, .. }
        ));
    }

    #[test]
    fn links() {
        let cid = crate::cid::cid_for_cbor(b"\xa0");
        let bytes = to_vec(&Value::Link(cid));
        assert_eq!(from_slice(&bytes).unwrap(), Value::Link(cid));
        let mut no_prefix = bytes.clone();
        no_prefix[4] = 1;
        assert!(matches!(err(&no_prefix), DecodeError::InvalidLink { .. }));
        assert!(matches!(
            err(&[0xd8, 42, 0x40]),
            DecodeError::InvalidLink { .. }
        ));
        assert!(matches!(
            err(&[0xd8, 42, 0x00]),
            DecodeError::InvalidLink { .. }
        ));
    }

    #[test]
    fn depth_limit() {
        let ok = [vec![0x81; MAX_DEPTH], vec![0x80]].concat();
        assert!(matches!(err(&ok), DecodeError::TooDeep { .. }));
        let ok = [vec![0x81; MAX_DEPTH - 1], vec![0x80]].concat();
        assert!(from_slice(&ok).is_ok());
    }

    /// `validate` refuses exactly what `from_slice` refuses, with the same error.
    #[test]
    fn validate_agrees_with_from_slice() {
        let cid = crate::cid::cid_for_cbor(b"\xa0");
        let deep = [vec![0x81; MAX_DEPTH], vec![0x80]].concat();
        let shallow = [vec![0x81; MAX_DEPTH - 1], vec![0x80]].concat();
        let inputs: Vec<Vec<u8>> = vec![
            vec![0xf6],
            vec![0x1b, 0x80, 0, 0, 0, 0, 0, 0, 0],
            vec![0x3b, 0x80, 0, 0, 0, 0, 0, 0, 0],
            vec![0x19, 0x00, 0xff],
            vec![0x78, 1, b'a'],
            vec![0x9f, 0xff],
            vec![0xf9, 0, 0],
            vec![0xf7],
            vec![0xc1, 0],
            vec![0x1c],
            vec![0x62, 0xff, 0xfe],
            vec![0xa1, 0x01, 0x01],
            vec![0x00, 0x00],
            vec![0x9a, 0xff, 0xff, 0xff, 0xff],
            vec![0xa2, 0x61, b'b', 1, 0x62, b'a', b'a', 2],
            vec![0xa2, 0x62, b'a', b'a', 2, 0x61, b'b', 1],
            vec![0xa2, 0x61, b'a', 1, 0x61, b'a', 2],
            vec![0xa1, 0x61, b'a', 0xa1, 0x61, 0xff, 0x01],
            to_vec(&Value::Link(cid)),
            vec![0xd8, 42, 0x40],
            deep,
            shallow,
        ];
        for bytes in inputs {
            assert_eq!(
                validate(&bytes).err(),
                from_slice(&bytes).err(),
                "{bytes:x?}"
            );
        }
    }

    #[test]
    fn insert_map_entries_in_canonical_order() {
        let body = to_vec(&Value::Map(BTreeMap::from([
            ("ops".to_owned(), Value::Array(vec![Value::Null])),
            ("rev".to_owned(), Value::from("r")),
            ("repo".to_owned(), Value::from("did")),
            ("blocks".to_owned(), Value::Bytes(vec![7; 300])),
        ])));
        let (seq, time) = (to_vec(&Value::Integer(1 << 40)), to_vec(&Value::from("t")));
        let mut out = vec![0xaa];
        insert_map_entries(&body, &[("time", &time), ("seq", &seq)], &mut out).unwrap();
        let want = to_vec(&Value::Map(BTreeMap::from([
            ("ops".to_owned(), Value::Array(vec![Value::Null])),
            ("rev".to_owned(), Value::from("r")),
            ("seq".to_owned(), Value::Integer(1 << 40)),
            ("repo".to_owned(), Value::from("did")),
            ("time".to_owned(), Value::from("t")),
            ("blocks".to_owned(), Value::Bytes(vec![7; 300])),
        ])));
        assert_eq!(&out[1..], want.as_slice());
        // 23 entries plus one: the map header grows by a byte.
        let big: BTreeMap<String, Value> = (0..23)
            .map(|i| (format!("k{i:02}"), Value::Integer(i)))
            .collect();
        let mut out = Vec::new();
        insert_map_entries(
            &to_vec(&Value::Map(big.clone())),
            &[("a", &[0x00])],
            &mut out,
        )
        .unwrap();
        let mut want = big;
        want.insert("a".to_owned(), Value::Integer(0));
        assert_eq!(out, to_vec(&Value::Map(want)));
        // Refusals leave `out` as it was.
        let mut out = vec![1, 2];
        assert_eq!(
            insert_map_entries(&body, &[("rev", &seq)], &mut out),
            Err(InsertError::Exists("rev".to_owned()))
        );
        assert_eq!(
            insert_map_entries(&body, &[("x", &seq), ("x", &seq)], &mut out),
            Err(InsertError::Exists("x".to_owned()))
        );
        assert_eq!(
            insert_map_entries(&[0x80], &[("x", &seq)], &mut out),
            Err(InsertError::NotAMap)
        );
        assert!(matches!(
            insert_map_entries(&body, &[("x", &[0x18])], &mut out),
            Err(InsertError::BadValue { .. })
        ));
        assert!(matches!(
            insert_map_entries(&[&body[..], &[0]].concat(), &[("x", &seq)], &mut out),
            Err(InsertError::Decode(DecodeError::TrailingBytes { .. }))
        ));
        assert!(matches!(
            insert_map_entries(&body[..body.len() - 1], &[("x", &seq)], &mut out),
            Err(InsertError::Decode(DecodeError::LengthExceedsInput { .. }))
        ));
        assert_eq!(out, [1, 2]);
    }

    #[test]
    fn prefix() {
        let (v, used) = from_slice_prefix(&[0x01, 0x02]).unwrap();
        assert_eq!((v, used), (Value::Integer(1), 1));
    }
}
