//! Lexicon JSON → the schema model, checking the document as it goes.
//!
//! Checked: `lexicon` is 1, `id` is an NSID, primary types (record, query, procedure,
//! subscription, permission set) are named `main`, `ref`/`union`/`unknown` are not named
//! definitions, a record's schema is an `object`, types and formats are known, constraint keys
//! have the right JSON types, `required`/`nullable` name declared properties, and references are
//! well formed. References are not required to resolve: a catalog may be partial.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::{Format, SchemaError, SchemaReason};
use crate::schema::{
    ArrayDef, BlobDef, Body, BooleanDef, Def, Field, IntegerDef, LengthDef, MethodDef, ObjectDef,
    RecordDef, StringDef, UnionDef,
};

/// A parsed document: its id and its definitions.
pub(crate) struct Doc {
    pub(crate) id: String,
    pub(crate) defs: Vec<(String, Def)>,
}

type Obj = Map<String, Value>;

/// Where the parser is: the document id (for local refs and errors) and the path in it.
struct Ctx<'a> {
    id: &'a str,
}

impl Ctx<'_> {
    fn err(&self, at: &str, reason: SchemaReason) -> SchemaError {
        SchemaError {
            id: self.id.to_owned(),
            at: at.to_owned(),
            reason,
        }
    }
}

/// Parses and checks one Lexicon document.
pub(crate) fn parse_doc(json: &Value) -> Result<Doc, SchemaError> {
    let raw_id = json.get("id").and_then(Value::as_str).unwrap_or("?");
    let ctx = Ctx { id: raw_id };
    let doc = json
        .as_object()
        .ok_or_else(|| ctx.err("", SchemaReason::NotAnObject))?;
    if doc.get("lexicon").and_then(Value::as_u64) != Some(1) {
        return Err(ctx.err("lexicon", SchemaReason::BadVersion));
    }
    let id = doc
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| id.parse::<atp_syntax::Nsid>().is_ok())
        .ok_or_else(|| ctx.err("id", SchemaReason::BadId))?;
    let defs = match doc.get("defs") {
        Some(Value::Object(defs)) => defs,
        Some(_) => return Err(ctx.err("defs", wrong("defs", "an object"))),
        None => return Err(ctx.err("", SchemaReason::Missing { key: "defs" })),
    };
    let mut out = Vec::with_capacity(defs.len());
    for (name, def) in defs {
        let at = format!("defs/{name}");
        out.push((name.clone(), parse_def(&ctx, name, def, &at)?));
    }
    Ok(Doc {
        id: id.to_owned(),
        defs: out,
    })
}

fn wrong(key: &'static str, expected: &'static str) -> SchemaReason {
    SchemaReason::WrongType { key, expected }
}

fn object<'v>(ctx: &Ctx<'_>, json: &'v Value, at: &str) -> Result<&'v Obj, SchemaError> {
    json.as_object()
        .ok_or_else(|| ctx.err(at, SchemaReason::NotAnObject))
}

fn type_of<'v>(ctx: &Ctx<'_>, obj: &'v Obj, at: &str) -> Result<&'v str, SchemaError> {
    match obj.get("type") {
        Some(Value::String(t)) => Ok(t),
        Some(_) => Err(ctx.err(at, wrong("type", "a string"))),
        None => Err(ctx.err(at, SchemaReason::Missing { key: "type" })),
    }
}

fn parse_def(ctx: &Ctx<'_>, name: &str, json: &Value, at: &str) -> Result<Def, SchemaError> {
    let obj = object(ctx, json, at)?;
    let type_name = type_of(ctx, obj, at)?;
    let primary = matches!(
        type_name,
        "record" | "query" | "procedure" | "subscription" | "permission-set"
    );
    if primary && name != "main" {
        let type_name = type_name.to_owned();
        return Err(ctx.err(at, SchemaReason::PrimaryNotMain { type_name }));
    }
    Ok(match type_name {
        "record" => Def::Record(parse_record(ctx, obj, at)?),
        "query" => Def::Query(parse_method(ctx, obj, at, false)?),
        "procedure" => Def::Procedure(parse_method(ctx, obj, at, true)?),
        "subscription" => Def::Subscription(parse_method(ctx, obj, at, false)?),
        "permission-set" => Def::PermissionSet,
        "token" => Def::Token,
        "ref" | "union" | "unknown" | "params" | "permission" => {
            let type_name = type_name.to_owned();
            return Err(ctx.err(at, SchemaReason::NotAllowedHere { type_name }));
        }
        _ => Def::Value(parse_field(ctx, json, at)?),
    })
}

fn parse_record(ctx: &Ctx<'_>, obj: &Obj, at: &str) -> Result<RecordDef, SchemaError> {
    let key = opt_str(ctx, obj, "key", at)?.unwrap_or("any").to_owned();
    let at = format!("{at}/record");
    let record = obj
        .get("record")
        .ok_or_else(|| ctx.err(&at, SchemaReason::Missing { key: "record" }))?;
    let record_obj = object(ctx, record, &at)?;
    let type_name = type_of(ctx, record_obj, &at)?;
    if type_name != "object" {
        let type_name = type_name.to_owned();
        return Err(ctx.err(&at, SchemaReason::NotAllowedHere { type_name }));
    }
    Ok(RecordDef {
        key,
        record: parse_object(ctx, record_obj, &at)?,
    })
}

fn parse_method(
    ctx: &Ctx<'_>,
    obj: &Obj,
    at: &str,
    has_input: bool,
) -> Result<MethodDef, SchemaError> {
    let parameters = match obj.get("parameters") {
        None => None,
        Some(params) => Some(parse_params(ctx, params, &format!("{at}/parameters"))?),
    };
    let input = match obj.get("input") {
        Some(body) if has_input => Some(parse_body(ctx, body, &format!("{at}/input"))?),
        _ => None,
    };
    if let Some(body) = obj.get("output") {
        parse_body(ctx, body, &format!("{at}/output"))?;
    }
    if let Some(message) = obj.get("message") {
        let at = format!("{at}/message");
        if let Some(schema) = object(ctx, message, &at)?.get("schema") {
            parse_field(ctx, schema, &format!("{at}/schema"))?;
        }
    }
    Ok(MethodDef { parameters, input })
}

fn parse_params(ctx: &Ctx<'_>, json: &Value, at: &str) -> Result<ObjectDef, SchemaError> {
    let obj = object(ctx, json, at)?;
    let type_name = type_of(ctx, obj, at)?;
    if type_name != "params" {
        let type_name = type_name.to_owned();
        return Err(ctx.err(at, SchemaReason::NotAllowedHere { type_name }));
    }
    let params = parse_object(ctx, obj, at)?;
    for (name, field) in &params.properties {
        let allowed = match field {
            Field::Array(array) => matches!(
                *array.items,
                Field::Boolean(_) | Field::Integer(_) | Field::String(_)
            ),
            Field::Boolean(_) | Field::Integer(_) | Field::String(_) | Field::Unknown => true,
            _ => false,
        };
        if !allowed {
            let type_name = field.type_name().to_owned();
            let at = format!("{at}/properties/{name}");
            return Err(ctx.err(&at, SchemaReason::NotAllowedHere { type_name }));
        }
    }
    Ok(params)
}

fn parse_body(ctx: &Ctx<'_>, json: &Value, at: &str) -> Result<Body, SchemaError> {
    let obj = object(ctx, json, at)?;
    let encoding = opt_str(ctx, obj, "encoding", at)?
        .ok_or_else(|| ctx.err(at, SchemaReason::Missing { key: "encoding" }))?
        .to_owned();
    let schema = match obj.get("schema") {
        None => None,
        Some(schema) => {
            let at = format!("{at}/schema");
            let field = parse_field(ctx, schema, &at)?;
            if !matches!(field, Field::Object(_) | Field::Ref(_) | Field::Union(_)) {
                let type_name = field.type_name().to_owned();
                return Err(ctx.err(&at, SchemaReason::NotAllowedHere { type_name }));
            }
            Some(field)
        }
    };
    Ok(Body { encoding, schema })
}

/// Parses a field type (anything that can describe a value).
fn parse_field(ctx: &Ctx<'_>, json: &Value, at: &str) -> Result<Field, SchemaError> {
    let obj = object(ctx, json, at)?;
    let type_name = type_of(ctx, obj, at)?;
    Ok(match type_name {
        "boolean" => Field::Boolean(BooleanDef {
            default: opt_bool(ctx, obj, "default", at)?,
            const_: opt_bool(ctx, obj, "const", at)?,
        }),
        "integer" => Field::Integer(IntegerDef {
            default: opt_i64(ctx, obj, "default", at)?,
            const_: opt_i64(ctx, obj, "const", at)?,
            enum_: opt_list(ctx, obj, "enum", at, "an array of integers", Value::as_i64)?,
            minimum: opt_i64(ctx, obj, "minimum", at)?,
            maximum: opt_i64(ctx, obj, "maximum", at)?,
        }),
        "string" => Field::String(parse_string(ctx, obj, at)?),
        "bytes" => Field::Bytes(LengthDef {
            min_length: opt_u64(ctx, obj, "minLength", at)?,
            max_length: opt_u64(ctx, obj, "maxLength", at)?,
        }),
        "cid-link" => Field::CidLink,
        "blob" => Field::Blob(BlobDef {
            accept: opt_list(ctx, obj, "accept", at, "an array of strings", |v| {
                v.as_str().map(str::to_owned)
            })?,
            max_size: opt_u64(ctx, obj, "maxSize", at)?,
        }),
        "array" => {
            let items_at = format!("{at}/items");
            let items = obj
                .get("items")
                .ok_or_else(|| ctx.err(at, SchemaReason::Missing { key: "items" }))?;
            Field::Array(ArrayDef {
                items: Box::new(parse_field(ctx, items, &items_at)?),
                min_length: opt_u64(ctx, obj, "minLength", at)?,
                max_length: opt_u64(ctx, obj, "maxLength", at)?,
            })
        }
        "object" => Field::Object(parse_object(ctx, obj, at)?),
        "ref" => {
            let reference = opt_str(ctx, obj, "ref", at)?
                .ok_or_else(|| ctx.err(at, SchemaReason::Missing { key: "ref" }))?;
            Field::Ref(resolve_ref(ctx.id, reference).map_err(|r| ctx.err(at, r))?)
        }
        "union" => Field::Union(parse_union(ctx, obj, at)?),
        "unknown" => Field::Unknown,
        "record" | "query" | "procedure" | "subscription" | "permission-set" | "token"
        | "params" | "permission" => {
            let type_name = type_name.to_owned();
            return Err(ctx.err(at, SchemaReason::NotAllowedHere { type_name }));
        }
        other => {
            let type_name = other.to_owned();
            return Err(ctx.err(at, SchemaReason::UnknownType { type_name }));
        }
    })
}

fn parse_string(ctx: &Ctx<'_>, obj: &Obj, at: &str) -> Result<StringDef, SchemaError> {
    let format = match opt_str(ctx, obj, "format", at)? {
        None => None,
        Some(name) => Some(Format::from_name(name).ok_or_else(|| {
            let format = name.to_owned();
            ctx.err(at, SchemaReason::UnknownFormat { format })
        })?),
    };
    let strings = |key| {
        opt_list(ctx, obj, key, at, "an array of strings", |v| {
            v.as_str().map(str::to_owned)
        })
    };
    strings("knownValues")?;
    Ok(StringDef {
        default: opt_str(ctx, obj, "default", at)?.map(str::to_owned),
        const_: opt_str(ctx, obj, "const", at)?.map(str::to_owned),
        enum_: strings("enum")?,
        format,
        max_length: opt_u64(ctx, obj, "maxLength", at)?,
        min_length: opt_u64(ctx, obj, "minLength", at)?,
        max_graphemes: opt_u64(ctx, obj, "maxGraphemes", at)?,
        min_graphemes: opt_u64(ctx, obj, "minGraphemes", at)?,
    })
}

fn parse_object(ctx: &Ctx<'_>, obj: &Obj, at: &str) -> Result<ObjectDef, SchemaError> {
    let mut properties = BTreeMap::new();
    match obj.get("properties") {
        None => {}
        Some(Value::Object(props)) => {
            for (name, prop) in props {
                let at = format!("{at}/properties/{name}");
                properties.insert(name.clone(), parse_field(ctx, prop, &at)?);
            }
        }
        Some(_) => return Err(ctx.err(at, wrong("properties", "an object"))),
    }
    let names = |key: &'static str| -> Result<Vec<String>, SchemaError> {
        let list = opt_list(ctx, obj, key, at, "an array of strings", |v| {
            v.as_str().map(str::to_owned)
        })?
        .unwrap_or_default();
        if let Some(name) = list.iter().find(|n| !properties.contains_key(*n)) {
            let name = name.clone();
            return Err(ctx.err(at, SchemaReason::UndeclaredProperty { list: key, name }));
        }
        Ok(list)
    };
    let required = names("required")?;
    let nullable = names("nullable")?;
    Ok(ObjectDef {
        properties,
        required,
        nullable,
    })
}

fn parse_union(ctx: &Ctx<'_>, obj: &Obj, at: &str) -> Result<UnionDef, SchemaError> {
    let refs = opt_list(ctx, obj, "refs", at, "an array of strings", |v| {
        v.as_str().map(str::to_owned)
    })?
    .ok_or_else(|| ctx.err(at, SchemaReason::Missing { key: "refs" }))?;
    let refs = refs
        .iter()
        .map(|r| resolve_ref(ctx.id, r).map_err(|reason| ctx.err(at, reason)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(UnionDef {
        refs,
        closed: opt_bool(ctx, obj, "closed", at)?.unwrap_or(false),
    })
}

/// `#name` (in document `id`), `nsid` (its `main`) or `nsid#name` → `nsid#name`.
pub(crate) fn resolve_ref(id: &str, reference: &str) -> Result<String, SchemaReason> {
    let bad = || SchemaReason::BadRef {
        reference: reference.to_owned(),
    };
    let (nsid, name) = match reference.split_once('#') {
        Some((nsid, name)) => (if nsid.is_empty() { id } else { nsid }, name),
        None => (reference, "main"),
    };
    if name.is_empty() || name.contains('#') || nsid.parse::<atp_syntax::Nsid>().is_err() {
        return Err(bad());
    }
    Ok(format!("{nsid}#{name}"))
}

fn opt_str<'v>(
    ctx: &Ctx<'_>,
    obj: &'v Obj,
    key: &'static str,
    at: &str,
) -> Result<Option<&'v str>, SchemaError> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ctx.err(at, wrong(key, "a string"))),
    }
}

fn opt_bool(
    ctx: &Ctx<'_>,
    obj: &Obj,
    key: &'static str,
    at: &str,
) -> Result<Option<bool>, SchemaError> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ctx.err(at, wrong(key, "a boolean"))),
    }
}

fn opt_i64(
    ctx: &Ctx<'_>,
    obj: &Obj,
    key: &'static str,
    at: &str,
) -> Result<Option<i64>, SchemaError> {
    match obj.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| ctx.err(at, wrong(key, "an integer"))),
    }
}

fn opt_u64(
    ctx: &Ctx<'_>,
    obj: &Obj,
    key: &'static str,
    at: &str,
) -> Result<Option<u64>, SchemaError> {
    match obj.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| ctx.err(at, wrong(key, "a non-negative integer"))),
    }
}

fn opt_list<T>(
    ctx: &Ctx<'_>,
    obj: &Obj,
    key: &'static str,
    at: &str,
    expected: &'static str,
    item: impl Fn(&Value) -> Option<T>,
) -> Result<Option<Vec<T>>, SchemaError> {
    let Some(value) = obj.get(key) else {
        return Ok(None);
    };
    value
        .as_array()
        .and_then(|items| items.iter().map(&item).collect::<Option<Vec<T>>>())
        .map(Some)
        .ok_or_else(|| ctx.err(at, wrong(key, expected)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refs_resolve_to_full_names() {
        assert_eq!(resolve_ref("a.b.c", "#x").unwrap(), "a.b.c#x");
        assert_eq!(resolve_ref("a.b.c", "d.e.f").unwrap(), "d.e.f#main");
        assert_eq!(resolve_ref("a.b.c", "d.e.f#y").unwrap(), "d.e.f#y");
        for bad in ["#", "d.e.f#", "nope", "d.e.f#a#b", ""] {
            assert!(resolve_ref("a.b.c", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn document_checks() {
        let ok = json!({"lexicon": 1, "id": "a.b.c", "defs": {"main": {"type": "object",
            "required": ["x"], "properties": {"x": {"type": "string", "format": "did"}}}}});
        assert!(parse_doc(&ok).is_ok());
        let cases = [
            json!({"lexicon": 1, "id": "a.b.c", "defs": {"main": {"type": "object", "required": ["y"], "properties": {}}}}),
            json!({"lexicon": 1, "id": "a.b.c", "defs": {"main": {"type": "string", "format": "colour"}}}),
            json!({"lexicon": 1, "id": "a.b.c", "defs": {"main": {"type": "frobnicate"}}}),
            json!({"lexicon": 1, "id": "a.b.c", "defs": {"main": {"type": "string", "maxLength": -1}}}),
            json!({"lexicon": 1, "id": "a.b.c", "defs": {"main": {"type": "array"}}}),
            json!({"lexicon": 1, "id": "a.b.c", "defs": {"main": {"type": "union", "refs": ["#x"]}}}),
            json!({"lexicon": 1, "id": "a.b.c", "defs": {"main": {"type": "query", "parameters": {"type": "params", "properties": {"o": {"type": "object"}}}}}}),
            json!({"lexicon": 1, "id": "a.b.c", "defs": {"main": {"type": "object", "properties": {"r": {"type": "ref", "ref": "not a ref"}}}}}),
            json!({"lexicon": 1, "id": "a.b.c"}),
            json!([1]),
        ];
        for case in cases {
            assert!(parse_doc(&case).is_err(), "{case}");
        }
    }
}
