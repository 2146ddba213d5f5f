//! DAG-CBOR encoder.

use super::{
    MAJOR_ARRAY, MAJOR_BYTES, MAJOR_MAP, MAJOR_NINT, MAJOR_TAG, MAJOR_TEXT, MAJOR_UINT, TAG_CID,
};
use crate::{Cid, Value};

const SIMPLE_FALSE: u8 = 0xf4;
const SIMPLE_TRUE: u8 = 0xf5;
const SIMPLE_NULL: u8 = 0xf6;

/// Encodes a value as canonical DAG-CBOR.
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    Encoder::new(&mut out).value(value);
    out
}

/// A low-level canonical writer, for callers that encode fixed shapes (MST nodes, commits) without
/// building a [`Value`] first.
///
/// The caller is responsible for writing map keys in DAG-CBOR order (shorter key first, then bytewise).
#[derive(Debug)]
pub struct Encoder<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Encoder<'a> {
    /// An encoder appending to `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Encoder { out }
    }

    fn header(&mut self, major: u8, n: u64) {
        let m = major << 5;
        if n < 24 {
            self.out.push(m | n as u8);
        } else if n <= u64::from(u8::MAX) {
            self.out.push(m | 24);
            self.out.push(n as u8);
        } else if n <= u64::from(u16::MAX) {
            self.out.push(m | 25);
            self.out.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= u64::from(u32::MAX) {
            self.out.push(m | 26);
            self.out.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            self.out.push(m | 27);
            self.out.extend_from_slice(&n.to_be_bytes());
        }
    }

    /// Writes a map header for `len` entries.
    pub fn map(&mut self, len: usize) -> &mut Self {
        self.header(MAJOR_MAP, len as u64);
        self
    }

    /// Writes an array header for `len` items.
    pub fn array(&mut self, len: usize) -> &mut Self {
        self.header(MAJOR_ARRAY, len as u64);
        self
    }

    /// Writes a text string.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.header(MAJOR_TEXT, s.len() as u64);
        self.out.extend_from_slice(s.as_bytes());
        self
    }

    /// Writes a byte string.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.header(MAJOR_BYTES, b.len() as u64);
        self.out.extend_from_slice(b);
        self
    }

    /// Writes a signed integer in its minimal form.
    pub fn int(&mut self, i: i64) -> &mut Self {
        if i >= 0 {
            self.header(MAJOR_UINT, i as u64);
        } else {
            // -1 - n encoding: n = -1 - i, computed without overflow.
            self.header(MAJOR_NINT, !(i as u64));
        }
        self
    }

    /// Writes an unsigned integer in its minimal form.
    pub fn uint(&mut self, u: u64) -> &mut Self {
        self.header(MAJOR_UINT, u);
        self
    }

    /// Writes `true` or `false`.
    pub fn bool(&mut self, b: bool) -> &mut Self {
        self.out.push(if b { SIMPLE_TRUE } else { SIMPLE_FALSE });
        self
    }

    /// Writes `null`.
    pub fn null(&mut self) -> &mut Self {
        self.out.push(SIMPLE_NULL);
        self
    }

    /// Writes a CID link: tag 42 over a byte string of `0x00 ‖ cid bytes`.
    pub fn link(&mut self, cid: &Cid) -> &mut Self {
        self.header(MAJOR_TAG, TAG_CID);
        let len = cid.encoded_len();
        self.header(MAJOR_BYTES, len as u64 + 1);
        self.out.push(0);
        cid.write_bytes(&mut *self.out)
            .expect("writing to a Vec cannot fail");
        self
    }

    /// Writes any value, sorting map keys canonically.
    pub fn value(&mut self, v: &Value) -> &mut Self {
        match v {
            Value::Null => self.null(),
            Value::Bool(b) => self.bool(*b),
            Value::Integer(i) => self.int(*i),
            Value::String(s) => self.str(s),
            Value::Bytes(b) => self.bytes(b),
            Value::Link(c) => self.link(c),
            Value::Array(items) => {
                self.array(items.len());
                for item in items {
                    self.value(item);
                }
                self
            }
            Value::Map(map) => {
                self.map(map.len());
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                // BTreeMap order is bytewise; DAG-CBOR wants length first. A stable sort by length
                // keeps bytewise order among keys of equal length.
                entries.sort_by_key(|(k, _)| k.len());
                for (k, item) in entries {
                    self.str(k);
                    self.value(item);
                }
                self
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn key_order_is_length_first() {
        let mut m = BTreeMap::new();
        m.insert("aa".to_owned(), Value::Integer(2));
        m.insert("b".to_owned(), Value::Integer(1));
        assert_eq!(
            to_vec(&Value::Map(m)),
            [0xa2, 0x61, 0x62, 0x01, 0x62, 0x61, 0x61, 0x02]
        );
    }

    #[test]
    fn integers_are_minimal() {
        let cases: [(i64, &[u8]); 8] = [
            (0, &[0x00]),
            (23, &[0x17]),
            (24, &[0x18, 24]),
            (255, &[0x18, 0xff]),
            (256, &[0x19, 0x01, 0x00]),
            (-1, &[0x20]),
            (-25, &[0x38, 24]),
            (
                i64::MIN,
                &[0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            ),
        ];
        for (i, bytes) in cases {
            assert_eq!(to_vec(&Value::Integer(i)), bytes, "{i}");
        }
    }
}
