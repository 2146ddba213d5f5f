//! Blob references inside records.
//!
//! Two shapes exist:
//! - the current one, `{"$type": "blob", "ref": <link>, "mimeType": <string>, "size": <integer>}`;
//! - the legacy one written by early clients, `{"cid": "<cid string>", "mimeType": <string>}`, with
//!   no size. Records holding it are still in repositories and must keep their exact bytes.

use std::collections::BTreeMap;

use crate::{Cid, Value};

/// A reference from a record to a blob.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlobRef {
    /// The blob's CID (normally raw codec, sha2-256).
    pub cid: Cid,
    /// The declared MIME type.
    pub mime_type: String,
    /// The declared size in bytes; `0` for legacy references, which do not carry one.
    pub size: u64,
    /// Whether this came from (and [`to_value`](BlobRef::to_value) writes) the legacy shape.
    pub legacy: bool,
}

impl BlobRef {
    /// A current-shape blob reference.
    pub fn new(cid: Cid, mime_type: impl Into<String>, size: u64) -> Self {
        BlobRef {
            cid,
            mime_type: mime_type.into(),
            size,
            legacy: false,
        }
    }

    /// Recognises a blob reference in either shape. Anything else (including a `$type: "blob"` map
    /// with a missing or mistyped field, or a negative size) → `None`.
    ///
    /// The current shape tolerates extra keys; the legacy shape must have exactly `cid` and
    /// `mimeType`, so that ordinary maps with a `cid` field (strong refs) are not mistaken for blobs.
    pub fn from_value(value: &Value) -> Option<BlobRef> {
        let map = value.as_map()?;
        match map.get("$type") {
            Some(t) if t.as_str() == Some("blob") => Self::typed(map),
            Some(_) => None,
            None => Self::legacy(map),
        }
    }

    fn typed(map: &BTreeMap<String, Value>) -> Option<BlobRef> {
        let cid = *map.get("ref")?.as_link()?;
        let mime_type = map.get("mimeType")?.as_str()?.to_owned();
        let size = u64::try_from(map.get("size")?.as_i64()?).ok()?;
        Some(BlobRef {
            cid,
            mime_type,
            size,
            legacy: false,
        })
    }

    fn legacy(map: &BTreeMap<String, Value>) -> Option<BlobRef> {
        if map.len() != 2 {
            return None;
        }
        let cid = crate::cid::parse(map.get("cid")?.as_str()?).ok()?;
        let mime_type = map.get("mimeType")?.as_str()?.to_owned();
        Some(BlobRef {
            cid,
            mime_type,
            size: 0,
            legacy: true,
        })
    }

    /// The value form, in the shape this reference came from.
    pub fn to_value(&self) -> Value {
        let mut map = BTreeMap::new();
        map.insert("mimeType".to_owned(), Value::String(self.mime_type.clone()));
        if self.legacy {
            map.insert("cid".to_owned(), Value::String(self.cid.to_string()));
        } else {
            map.insert("$type".to_owned(), Value::String("blob".to_owned()));
            map.insert("ref".to_owned(), Value::Link(self.cid));
            // Sizes above i64::MAX cannot be written; saturate rather than wrap.
            let size = i64::try_from(self.size).unwrap_or(i64::MAX);
            map.insert("size".to_owned(), Value::Integer(size));
        }
        Value::Map(map)
    }
}

/// Every blob reference anywhere in `record`, in document order (map keys in byte order).
/// Blob maps are not searched further. Iterative, so deep values cannot overflow the stack.
pub fn collect(record: &Value) -> Vec<BlobRef> {
    let mut found = Vec::new();
    let mut stack = vec![record];
    while let Some(value) = stack.pop() {
        match value {
            Value::Map(map) => {
                if let Some(blob) = BlobRef::from_value(value) {
                    found.push(blob);
                } else {
                    stack.extend(map.values().rev());
                }
            }
            Value::Array(items) => stack.extend(items.iter().rev()),
            _ => {}
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::from_json;
    use serde_json::json;

    const CID: &str = "bafkreiccldh766hwcnuxnf2wh6jgzepf2nlu2lvcllt63eww5p6chi4ity";

    #[test]
    fn both_shapes_round_trip() {
        let typed = from_json(
            &json!({"$type": "blob", "ref": {"$link": CID}, "mimeType": "image/png", "size": 42}),
        )
        .unwrap();
        let b = BlobRef::from_value(&typed).unwrap();
        assert_eq!(
            (b.size, b.legacy, b.cid.to_string()),
            (42, false, CID.to_owned())
        );
        assert_eq!(b.to_value(), typed);

        let legacy = from_json(&json!({"cid": CID, "mimeType": "image/jpeg"})).unwrap();
        let b = BlobRef::from_value(&legacy).unwrap();
        assert!(b.legacy);
        assert_eq!(b.to_value(), legacy);
    }

    #[test]
    fn not_blobs() {
        for j in [
            json!({"cid": CID, "uri": "at://did:plc:x/a.b.c/1"}),
            json!({"cid": CID, "mimeType": "image/png", "extra": 1}),
            json!({"$type": "other", "cid": CID, "mimeType": "x"}),
        ] {
            assert_eq!(BlobRef::from_value(&from_json(&j).unwrap()), None, "{j}");
        }
        // from_json refuses a blob without a size, so build that value by hand.
        let mut no_size = BlobRef::new(crate::cid::parse(CID).unwrap(), "image/png", 1).to_value();
        if let Value::Map(m) = &mut no_size {
            m.remove("size");
        }
        assert_eq!(BlobRef::from_value(&no_size), None);
    }

    #[test]
    fn collect_walks_everything() {
        let record = from_json(&json!({
            "a": {"$type": "blob", "ref": {"$link": CID}, "mimeType": "image/png", "size": 1},
            "b": [{"x": {"cid": CID, "mimeType": "image/jpeg"}}, 3],
        }))
        .unwrap();
        let blobs = collect(&record);
        assert_eq!(blobs.len(), 2);
        assert!(!blobs[0].legacy && blobs[1].legacy);
    }
}
