//! Query-string encoding of XRPC parameters: a flat JSON object of scalars or arrays of scalars;
//! arrays become repeated keys (`?uris=a&uris=b`) and `null`s are omitted.

use serde::Serialize;
use serde_json::Value;

use crate::XrpcError;

/// The `(name, value)` pairs for `params`, sorted by name.
pub(crate) fn encode<P: Serialize + ?Sized>(
    params: &P,
) -> Result<Vec<(String, String)>, XrpcError> {
    let value = serde_json::to_value(params).map_err(XrpcError::Decode)?;
    let map = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Object(map) => map,
        other => {
            return Err(invalid(format!("expected an object, got {}", kind(&other))));
        }
    };
    let mut pairs = Vec::with_capacity(map.len());
    for (name, value) in map {
        match value {
            Value::Array(items) => {
                for item in items {
                    if let Some(s) = scalar(&name, item)? {
                        pairs.push((name.clone(), s));
                    }
                }
            }
            other => {
                if let Some(s) = scalar(&name, other)? {
                    pairs.push((name, s));
                }
            }
        }
    }
    Ok(pairs)
}

fn scalar(name: &str, value: Value) -> Result<Option<String>, XrpcError> {
    match value {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(b.to_string())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::String(s) => Ok(Some(s)),
        other => Err(invalid(format!(
            "parameter {name:?} is {}, not a scalar",
            kind(&other)
        ))),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn invalid(reason: String) -> XrpcError {
    XrpcError::InvalidParams { reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flattens_arrays_and_skips_nulls() {
        let pairs =
            encode(&json!({"a": "x", "n": 5, "b": true, "z": null, "uris": ["u1", "u2"]})).unwrap();
        let want: Vec<(String, String)> = [
            ("a", "x"),
            ("b", "true"),
            ("n", "5"),
            ("uris", "u1"),
            ("uris", "u2"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(pairs, want);
        assert!(encode(&()).unwrap().is_empty());
    }

    #[test]
    fn refuses_nested_values() {
        assert!(matches!(
            encode(&json!({"a": {"b": 1}})),
            Err(XrpcError::InvalidParams { .. })
        ));
        assert!(matches!(
            encode(&json!({"a": [[1]]})),
            Err(XrpcError::InvalidParams { .. })
        ));
        assert!(matches!(
            encode(&json!(["a"])),
            Err(XrpcError::InvalidParams { .. })
        ));
    }
}
