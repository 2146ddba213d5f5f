//! atproto JSON ⇄ [`Value`].
//!
//! atproto JSON is not DAG-JSON: links are `{"$link": "<cid>"}`, byte strings are
//! `{"$bytes": "<base64>"}`, and blobs are ordinary maps
//! `{"$type": "blob", "ref": {"$link": ...}, "mimeType": ..., "size": ...}`.
//!
//! Input rules ([`from_json`]):
//! - an object with a `$link` or `$bytes` key must have exactly that one key, holding a string;
//! - `$bytes` is standard-alphabet base64, padding optional, non-zero trailing bits tolerated;
//! - numbers must be integers in `i64` range; a float with a zero fraction (`123.0`) counts as an
//!   integer, any other float is refused (the data model has no floats);
//! - `$type`, when present, must be a non-empty string, and `$type: "blob"` objects must carry
//!   a `ref` link, a string `mimeType` and an integer `size`.
//!
//! Output ([`to_json`]) writes `$bytes` as standard base64 without padding.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use data_encoding::{BASE64_NOPAD, Encoding};

use crate::Value;

/// How deeply arrays and objects may nest; the same limit as [`crate::cbor::MAX_DEPTH`], with
/// `$link` and `$bytes` objects counting as leaves.
const MAX_DEPTH: usize = crate::cbor::MAX_DEPTH;

/// Why a JSON document is not valid atproto data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid atproto JSON at {path}: {kind}")]
pub struct JsonError {
    /// Where the problem is, as a JSON pointer (`""` is the document itself).
    pub path: String,
    /// What the problem is.
    pub kind: JsonErrorKind,
}

/// The kinds of [`JsonError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonErrorKind {
    /// The text is not JSON at all (only from [`from_json_slice`]).
    #[error("not JSON: {reason}")]
    Syntax {
        /// What the JSON parser said.
        reason: String,
    },
    /// A record's top level is not an object.
    #[error("a record must be a JSON object")]
    NotAnObject,
    /// A number with a fractional part (or NaN-like value): the data model has no floats.
    #[error("floats are not allowed in the atproto data model")]
    Float,
    /// An integer outside the signed 64-bit range.
    #[error("integer does not fit in a signed 64-bit integer")]
    IntegerOutOfRange,
    /// `$link` with another key, a non-string value or a bad CID.
    #[error("invalid $link: {reason}")]
    InvalidLink {
        /// What was wrong.
        reason: String,
    },
    /// `$bytes` with another key, a non-string value or bad base64.
    #[error("invalid $bytes: {reason}")]
    InvalidBytes {
        /// What was wrong.
        reason: &'static str,
    },
    /// `$type` that is not a non-empty string.
    #[error("$type must be a non-empty string")]
    InvalidType,
    /// A `$type: "blob"` object without a valid `ref`, `mimeType` or `size`.
    #[error("invalid blob: {reason}")]
    InvalidBlob {
        /// What was wrong.
        reason: &'static str,
    },
    /// Nesting deeper than the data-model limit.
    #[error("nesting deeper than {limit}")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
}

impl JsonError {
    fn new(kind: JsonErrorKind) -> Self {
        JsonError {
            path: String::new(),
            kind,
        }
    }

    /// Prepends one path segment while the error travels up (errors only, so no cost otherwise).
    fn under(mut self, segment: &str) -> Self {
        let escaped = segment.replace('~', "~0").replace('/', "~1");
        self.path = format!("/{escaped}{}", self.path);
        self
    }
}

/// Standard base64, no padding, trailing bits not checked (`"123"` is accepted, as the
/// interop vectors require).
static BASE64_LENIENT: LazyLock<Encoding> = LazyLock::new(|| {
    let mut spec = BASE64_NOPAD.specification();
    spec.check_trailing_bits = false;
    spec.encoding()
        .expect("the standard base64 alphabet with lenient trailing bits is a valid specification")
});

/// Converts any atproto JSON value into a [`Value`].
pub fn from_json(json: &serde_json::Value) -> Result<Value, JsonError> {
    convert(json, 0)
}

/// Converts a record: like [`from_json`], but the top level must be an object.
pub fn record_from_json(json: &serde_json::Value) -> Result<Value, JsonError> {
    if !json.is_object() {
        return Err(JsonError::new(JsonErrorKind::NotAnObject));
    }
    from_json(json)
}

/// Parses JSON text and converts it with [`from_json`].
pub fn from_json_slice(text: &[u8]) -> Result<Value, JsonError> {
    let json: serde_json::Value = serde_json::from_slice(text).map_err(|e| {
        JsonError::new(JsonErrorKind::Syntax {
            reason: e.to_string(),
        })
    })?;
    from_json(&json)
}

/// Converts a [`Value`] to atproto JSON. Never fails: every value has a JSON form.
pub fn to_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Integer(i) => J::from(*i),
        Value::String(s) => J::String(s.clone()),
        Value::Bytes(b) => single("$bytes", J::String(BASE64_NOPAD.encode(b))),
        Value::Link(cid) => single("$link", J::String(cid.to_string())),
        Value::Array(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Map(map) => J::Object(map.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
    }
}

fn single(key: &str, value: serde_json::Value) -> serde_json::Value {
    let mut object = serde_json::Map::new();
    object.insert(key.to_owned(), value);
    serde_json::Value::Object(object)
}

/// Decodes `$bytes` content: standard alphabet, optional padding, lenient trailing bits.
fn decode_base64(text: &str) -> Result<Vec<u8>, JsonErrorKind> {
    let unpadded = text.trim_end_matches('=');
    let padding = text.len() - unpadded.len();
    if padding > 2 || (padding > 0 && !text.len().is_multiple_of(4)) {
        return Err(JsonErrorKind::InvalidBytes {
            reason: "bad base64 padding",
        });
    }
    BASE64_LENIENT
        .decode(unpadded.as_bytes())
        .map_err(|_| JsonErrorKind::InvalidBytes {
            reason: "not standard base64",
        })
}

fn convert(json: &serde_json::Value, depth: usize) -> Result<Value, JsonError> {
    use serde_json::Value as J;
    match json {
        J::Null => Ok(Value::Null),
        J::Bool(b) => Ok(Value::Bool(*b)),
        J::Number(n) => number(n).map(Value::Integer).map_err(JsonError::new),
        J::String(s) => Ok(Value::String(s.clone())),
        J::Array(items) => {
            check_depth(depth + 1)?;
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(convert(item, depth + 1).map_err(|e| e.under(&i.to_string()))?);
            }
            Ok(Value::Array(out))
        }
        J::Object(object) => object_value(object, depth),
    }
}

fn check_depth(depth: usize) -> Result<(), JsonError> {
    if depth > MAX_DEPTH {
        return Err(JsonError::new(JsonErrorKind::TooDeep { limit: MAX_DEPTH }));
    }
    Ok(())
}

fn number(n: &serde_json::Number) -> Result<i64, JsonErrorKind> {
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    if n.is_u64() {
        return Err(JsonErrorKind::IntegerOutOfRange);
    }
    let f = n.as_f64().ok_or(JsonErrorKind::Float)?;
    if !f.is_finite() || f.fract() != 0.0 {
        return Err(JsonErrorKind::Float);
    }
    // -2^63 is exactly representable; 2^63 is the first value out of range.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if (-LIMIT..LIMIT).contains(&f) {
        Ok(f as i64)
    } else {
        Err(JsonErrorKind::IntegerOutOfRange)
    }
}

fn object_value(
    object: &serde_json::Map<String, serde_json::Value>,
    depth: usize,
) -> Result<Value, JsonError> {
    if let Some(link) = object.get("$link") {
        return special_link(object.len(), link).map_err(JsonError::new);
    }
    if let Some(bytes) = object.get("$bytes") {
        if object.len() != 1 {
            return Err(JsonError::new(JsonErrorKind::InvalidBytes {
                reason: "an object with $bytes must have no other keys",
            }));
        }
        let text = bytes
            .as_str()
            .ok_or(JsonError::new(JsonErrorKind::InvalidBytes {
                reason: "$bytes must be a string",
            }))?;
        return decode_base64(text)
            .map(Value::Bytes)
            .map_err(JsonError::new);
    }
    check_depth(depth + 1)?;
    let mut map = BTreeMap::new();
    for (key, item) in object {
        let value = convert(item, depth + 1).map_err(|e| e.under(key))?;
        map.insert(key.clone(), value);
    }
    if let Some(type_value) = map.get("$type") {
        match type_value.as_str() {
            Some("blob") => check_blob(&map)?,
            Some(t) if !t.is_empty() => {}
            _ => return Err(JsonError::new(JsonErrorKind::InvalidType).under("$type")),
        }
    }
    Ok(Value::Map(map))
}

fn special_link(keys: usize, link: &serde_json::Value) -> Result<Value, JsonErrorKind> {
    let invalid = |reason: &str| JsonErrorKind::InvalidLink {
        reason: reason.to_owned(),
    };
    if keys != 1 {
        return Err(invalid("an object with $link must have no other keys"));
    }
    let text = link.as_str().ok_or(invalid("$link must be a string"))?;
    crate::cid::parse(text)
        .map(Value::Link)
        .map_err(|e| invalid(&e.to_string()))
}

/// A `$type: "blob"` map (already converted) must have a link `ref`, a string `mimeType` and a
/// non-negative integer `size`.
fn check_blob(map: &BTreeMap<String, Value>) -> Result<(), JsonError> {
    let fail = |reason| Err(JsonError::new(JsonErrorKind::InvalidBlob { reason }));
    if !matches!(map.get("ref"), Some(Value::Link(_))) {
        return fail("ref must be a $link");
    }
    if !matches!(map.get("mimeType"), Some(Value::String(_))) {
        return fail("mimeType must be a string");
    }
    match map.get("size") {
        Some(Value::Integer(size)) if *size >= 0 => Ok(()),
        _ => fail("size must be a non-negative integer"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bytes_base64_variants() {
        let v = from_json(&json!({"$bytes": "aGk"})).unwrap();
        assert_eq!(v, Value::Bytes(b"hi".to_vec()));
        assert_eq!(from_json(&json!({"$bytes": "aGk="})).unwrap(), v);
        // Non-zero trailing bits are tolerated ("123" is a valid vector in lexicon tests).
        assert!(from_json(&json!({"$bytes": "123"})).is_ok());
        assert!(from_json(&json!({"$bytes": "aGk=="})).is_err());
        assert!(from_json(&json!({"$bytes": "a"})).is_err());
        assert!(from_json(&json!({"$bytes": "aG-_"})).is_err());
        assert_eq!(to_json(&v), json!({"$bytes": "aGk"}));
    }

    #[test]
    fn numbers() {
        assert_eq!(from_json(&json!(123.0)).unwrap(), Value::Integer(123));
        assert_eq!(from_json(&json!(-5)).unwrap(), Value::Integer(-5));
        assert!(from_json(&json!(1.5)).is_err());
        assert!(from_json(&json!(u64::MAX)).is_err());
        assert!(from_json(&json!(1e19)).is_err());
    }

    #[test]
    fn error_paths() {
        let e = from_json(&json!({"a": [1, {"b": 2.5}]})).unwrap_err();
        assert_eq!(e.path, "/a/1/b");
        assert_eq!(e.kind, JsonErrorKind::Float);
        let e = from_json(&json!({"x": {"$type": ""}})).unwrap_err();
        assert_eq!(e.path, "/x/$type");
    }

    #[test]
    fn links_and_blobs() {
        let cid = "bafkreiccldh766hwcnuxnf2wh6jgzepf2nlu2lvcllt63eww5p6chi4ity";
        let blob =
            json!({"$type": "blob", "ref": {"$link": cid}, "mimeType": "image/png", "size": 3});
        let v = from_json(&blob).unwrap();
        assert_eq!(to_json(&v), blob);
        let mut bad = blob.clone();
        bad["size"] = json!(-1);
        assert!(from_json(&bad).is_err());
        assert!(from_json(&json!({"$link": "Qmfoo"})).is_err());
    }

    #[test]
    fn depth() {
        let mut deep = json!(1);
        for _ in 0..MAX_DEPTH {
            deep = json!([deep]);
        }
        assert!(from_json(&deep).is_ok());
        assert!(from_json(&json!([deep])).is_err());
    }
}
