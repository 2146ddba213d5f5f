//! The schema model: what the validator needs from a Lexicon document, parsed once.
//!
//! Only constraints are kept (descriptions, `knownValues` and output schemas' details are
//! dropped, except what the checks of `parse.rs` need). References are stored resolved to their
//! full form `nsid#name` (`#main` included), so lookups are one map access.

use std::collections::BTreeMap;

use crate::error::Format;

/// A named definition of a Lexicon document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Def {
    /// `record` (only as `main`).
    Record(RecordDef),
    /// `query` (only as `main`).
    Query(MethodDef),
    /// `procedure` (only as `main`).
    Procedure(MethodDef),
    /// `subscription` (only as `main`); parameters only.
    Subscription(MethodDef),
    /// `permission-set` (only as `main`); not validated against.
    PermissionSet,
    /// `token`: a named value with no data; the value is its full name.
    Token,
    /// A value type (object, string, array, ...).
    Value(Field),
}

impl Def {
    /// The Lexicon type name.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Def::Record(_) => "record",
            Def::Query(_) => "query",
            Def::Procedure(_) => "procedure",
            Def::Subscription(_) => "subscription",
            Def::PermissionSet => "permission-set",
            Def::Token => "token",
            Def::Value(field) => field.type_name(),
        }
    }
}

/// A `record` definition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RecordDef {
    /// The record key type (`tid`, `nsid`, `any`, `literal:self`).
    pub(crate) key: String,
    /// The record's schema.
    pub(crate) record: ObjectDef,
}

/// A query, procedure or subscription.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct MethodDef {
    /// Query parameters.
    pub(crate) parameters: Option<ObjectDef>,
    /// The request body (procedures only).
    pub(crate) input: Option<Body>,
}

/// A request body: its encoding and, for JSON, its schema.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Body {
    /// The MIME type (`application/json`, `*/*`, ...).
    pub(crate) encoding: String,
    /// An object, a ref or a union (JSON bodies only).
    pub(crate) schema: Option<Field>,
}

/// A field type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Field {
    /// `boolean`.
    Boolean(BooleanDef),
    /// `integer`.
    Integer(IntegerDef),
    /// `string`.
    String(StringDef),
    /// `bytes`.
    Bytes(LengthDef),
    /// `cid-link`.
    CidLink,
    /// `blob`.
    Blob(BlobDef),
    /// `array`.
    Array(ArrayDef),
    /// `object` (and `params`).
    Object(ObjectDef),
    /// `ref`: the full name of the target.
    Ref(String),
    /// `union`.
    Union(UnionDef),
    /// `unknown`: any object.
    Unknown,
}

impl Field {
    /// The Lexicon type name.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Field::Boolean(_) => "boolean",
            Field::Integer(_) => "integer",
            Field::String(_) => "string",
            Field::Bytes(_) => "bytes",
            Field::CidLink => "cid-link",
            Field::Blob(_) => "blob",
            Field::Array(_) => "array",
            Field::Object(_) => "object",
            Field::Ref(_) => "ref",
            Field::Union(_) => "union",
            Field::Unknown => "unknown",
        }
    }

    /// Whether an absent value takes a default (and so passes even when required).
    pub(crate) fn has_default(&self) -> bool {
        match self {
            Field::Boolean(b) => b.default.is_some(),
            Field::Integer(i) => i.default.is_some(),
            Field::String(s) => s.default.is_some(),
            _ => false,
        }
    }
}

/// `boolean` constraints.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct BooleanDef {
    pub(crate) default: Option<bool>,
    pub(crate) const_: Option<bool>,
}

/// `integer` constraints.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct IntegerDef {
    pub(crate) default: Option<i64>,
    pub(crate) const_: Option<i64>,
    pub(crate) enum_: Option<Vec<i64>>,
    pub(crate) minimum: Option<i64>,
    pub(crate) maximum: Option<i64>,
}

/// `string` constraints (`knownValues` is advice, not a constraint, and is not kept).
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct StringDef {
    pub(crate) default: Option<String>,
    pub(crate) const_: Option<String>,
    pub(crate) enum_: Option<Vec<String>>,
    pub(crate) format: Option<Format>,
    /// In UTF-8 bytes.
    pub(crate) max_length: Option<u64>,
    /// In UTF-8 bytes.
    pub(crate) min_length: Option<u64>,
    pub(crate) max_graphemes: Option<u64>,
    pub(crate) min_graphemes: Option<u64>,
}

/// `minLength` / `maxLength` (bytes).
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct LengthDef {
    pub(crate) min_length: Option<u64>,
    pub(crate) max_length: Option<u64>,
}

/// `blob` constraints.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct BlobDef {
    /// MIME patterns (`image/png`, `image/*`, `*/*`); `None` accepts any.
    pub(crate) accept: Option<Vec<String>>,
    pub(crate) max_size: Option<u64>,
}

/// `array` constraints.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ArrayDef {
    pub(crate) items: Box<Field>,
    pub(crate) min_length: Option<u64>,
    pub(crate) max_length: Option<u64>,
}

/// `object` (and `params`) constraints.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct ObjectDef {
    pub(crate) properties: BTreeMap<String, Field>,
    pub(crate) required: Vec<String>,
    pub(crate) nullable: Vec<String>,
}

/// `union` constraints.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct UnionDef {
    /// Full names (`nsid#name`).
    pub(crate) refs: Vec<String>,
    pub(crate) closed: bool,
}

impl UnionDef {
    /// Whether `type_name` (a value's `$type`, with or without `#main`) is one of the refs;
    /// returns the matching full name.
    pub(crate) fn find(&self, type_name: &str) -> Option<&str> {
        let bare = type_name.strip_suffix("#main").unwrap_or(type_name);
        self.refs
            .iter()
            .find(|r| match r.strip_suffix("#main") {
                Some(main) => main == bare,
                None => r.as_str() == type_name,
            })
            .map(String::as_str)
    }
}

/// Whether `mime_type` matches one of `accept`'s patterns (`*/*`, `type/*` or exact).
pub(crate) fn mime_accepted(accept: &[String], mime_type: &str) -> bool {
    accept.iter().any(|pattern| {
        if pattern == "*/*" {
            return true;
        }
        match pattern.strip_suffix("/*") {
            Some(top) => mime_type
                .strip_prefix(top)
                .is_some_and(|rest| rest.starts_with('/')),
            None => pattern == mime_type,
        }
    })
}
