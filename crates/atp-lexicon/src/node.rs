//! [`Node`]: the view of a data value the validator needs, for both the data model
//! ([`atp_data::Value`], records) and atproto JSON ([`serde_json::Value`], XRPC bodies), so a
//! request body is validated where it was parsed, without converting it first.

use atp_data::blob::BlobRef;

/// What kind of value a [`Node`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape<'a, N> {
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer (in JSON, also a float with a zero fraction, as the data model allows).
    Integer(i64),
    /// A number that is not an `i64` integer (the data model has no floats).
    NotInteger,
    /// A string.
    String(&'a str),
    /// A byte string of this many bytes (JSON: `{"$bytes": ...}`).
    Bytes(usize),
    /// A CID link (JSON: `{"$link": ...}`).
    Link,
    /// A `$bytes` or `$link` object that does not decode.
    Malformed,
    /// An array.
    Array(&'a [N]),
    /// A map (object); fields through [`Node::get`].
    Map,
}

/// A data value the validator can inspect.
pub trait Node: Sized {
    /// What kind of value this is.
    fn shape(&self) -> Shape<'_, Self>;
    /// The field `key` of a map (`None` if absent or not a map).
    fn get(&self, key: &str) -> Option<&Self>;
    /// This value as a blob reference, in either shape (`None` if it is not one).
    fn blob(&self) -> Option<BlobRef>;
}

impl Node for atp_data::Value {
    fn shape(&self) -> Shape<'_, Self> {
        use atp_data::Value as V;
        match self {
            V::Null => Shape::Null,
            V::Bool(b) => Shape::Bool(*b),
            V::Integer(i) => Shape::Integer(*i),
            V::String(s) => Shape::String(s),
            V::Bytes(b) => Shape::Bytes(b.len()),
            V::Link(_) => Shape::Link,
            V::Array(items) => Shape::Array(items),
            V::Map(_) => Shape::Map,
        }
    }

    fn get(&self, key: &str) -> Option<&Self> {
        atp_data::Value::get(self, key)
    }

    fn blob(&self) -> Option<BlobRef> {
        BlobRef::from_value(self)
    }
}

impl Node for serde_json::Value {
    fn shape(&self) -> Shape<'_, Self> {
        use serde_json::Value as J;
        match self {
            J::Null => Shape::Null,
            J::Bool(b) => Shape::Bool(*b),
            J::Number(n) => json_integer(n).map_or(Shape::NotInteger, Shape::Integer),
            J::String(s) => Shape::String(s),
            J::Array(items) => Shape::Array(items),
            J::Object(map) if map.contains_key("$bytes") || map.contains_key("$link") => {
                // The data-model conversion of this one small object decides; it refuses extra
                // keys, bad base64 and bad CIDs.
                match atp_data::json::from_json(self) {
                    Ok(atp_data::Value::Bytes(b)) => Shape::Bytes(b.len()),
                    Ok(atp_data::Value::Link(_)) => Shape::Link,
                    _ => Shape::Malformed,
                }
            }
            J::Object(_) => Shape::Map,
        }
    }

    fn get(&self, key: &str) -> Option<&Self> {
        self.as_object()?.get(key)
    }

    fn blob(&self) -> Option<BlobRef> {
        let map = self.as_object()?;
        let typed = map.get("$type").and_then(serde_json::Value::as_str) == Some("blob");
        let legacy = !map.contains_key("$type") && map.len() == 2 && map.contains_key("cid");
        if !typed && !legacy {
            return None;
        }
        BlobRef::from_value(&atp_data::json::from_json(self).ok()?)
    }
}

/// A JSON number as an integer: `i64`, or a float with a zero fraction inside the `i64` range.
fn json_integer(n: &serde_json::Number) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    // 2^63 as f64 is exact; anything at or above it does not fit.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if f.fract() == 0.0 && (-LIMIT..LIMIT).contains(&f) {
        #[allow(clippy::cast_possible_truncation)]
        return Some(f as i64);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_shapes() {
        assert_eq!(json!(3).shape(), Shape::Integer(3));
        assert_eq!(json!(3.0).shape(), Shape::Integer(3));
        assert_eq!(json!(3.5).shape(), Shape::NotInteger);
        assert_eq!(json!(u64::MAX).shape(), Shape::NotInteger);
        assert_eq!(json!({"$bytes": "AAEC"}).shape(), Shape::Bytes(3));
        assert_eq!(json!({"$bytes": 1}).shape(), Shape::Malformed);
        assert_eq!(json!({"$link": "nope"}).shape(), Shape::Malformed);
        assert_eq!(
            json!({"$link": "bafyreiclp443lavogvhj3d2ob2cxbfuscni2k5jk7bebjzg7khl3esabwq"}).shape(),
            Shape::Link
        );
        assert_eq!(json!({"a": 1}).shape(), Shape::Map);
        let blob = json!({"$type": "blob", "ref": {"$link": "bafkreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"}, "mimeType": "image/png", "size": 3});
        assert_eq!(blob.blob().map(|b| b.size), Some(3));
        assert!(json!({"a": 1}).blob().is_none());
    }
}
