//! The validation engine: one value against one field type, recursively.
//!
//! Tricky bits:
//! - Paths (`Record/embed/images/0/alt`) are a linked list on the stack and are only turned into
//!   a string when an error is returned, so a valid value costs no allocation for them.
//! - Every step (a nested value, or one ref followed) counts against [`MAX_DEPTH`], so cyclic
//!   refs (`#a` → `#b` → `#a`) end in an error instead of a stack overflow.
//! - As in the reference: properties not in the schema are allowed; an absent property with a
//!   `default` passes even when required; `null` passes only for `nullable` properties; an open
//!   union accepts any `$type` it does not list, without checking the value further.

use unicode_segmentation::UnicodeSegmentation;

use crate::catalog::Catalog;
use crate::error::{Format, LexError, LexErrorKind as K};
use crate::node::{Node, Shape};
use crate::schema::{
    ArrayDef, BlobDef, BooleanDef, Def, Field, IntegerDef, LengthDef, ObjectDef, StringDef,
    UnionDef, mime_accepted,
};

/// How many nested values and followed refs one validation may go through.
pub const MAX_DEPTH: usize = 128;

/// A path to the value being checked, kept on the stack.
#[derive(Clone, Copy)]
pub(crate) enum Path<'a> {
    /// The root name (`Record`, `Input`, or a parameter's name).
    Root(&'a str),
    /// A map key under a parent.
    Key(&'a Path<'a>, &'a str),
    /// An array index under a parent.
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    fn render(&self) -> String {
        match self {
            Path::Root(name) => (*name).to_owned(),
            Path::Key(parent, key) => format!("{}/{key}", parent.render()),
            Path::Index(parent, i) => format!("{}/{i}", parent.render()),
        }
    }

    pub(crate) fn error(&self, kind: K) -> LexError {
        LexError::new(self.render(), kind)
    }
}

type Result<T = ()> = std::result::Result<T, LexError>;

/// Validates values against the definitions of one catalog.
pub(crate) struct Validator<'c> {
    pub(crate) catalog: &'c Catalog,
}

impl Validator<'_> {
    /// Checks `value` against the definition named `name` (`nsid#name`).
    pub(crate) fn def<N: Node>(
        &self,
        path: &Path<'_>,
        name: &str,
        value: &N,
        depth: usize,
    ) -> Result {
        let depth = step(path, depth)?;
        let def = self.catalog.def(name).ok_or_else(|| {
            path.error(K::UnresolvedRef {
                reference: name.to_owned(),
            })
        })?;
        match def {
            Def::Value(field) => self.field(path, field, value, depth),
            Def::Record(record) => self.object(path, &record.record, value, depth),
            Def::Token => match value.shape() {
                Shape::String(s) if s == name || name.strip_suffix("#main") == Some(s) => Ok(()),
                Shape::String(_) => Err(path.error(K::Const {
                    expected: name.to_owned(),
                })),
                _ => Err(path.error(K::NotString)),
            },
            other => Err(path.error(K::NotAValueType {
                reference: name.to_owned(),
                def_type: other.type_name(),
            })),
        }
    }

    /// Checks `value` against `field`.
    pub(crate) fn field<N: Node>(
        &self,
        path: &Path<'_>,
        field: &Field,
        value: &N,
        depth: usize,
    ) -> Result {
        let depth = step(path, depth)?;
        match field {
            Field::Boolean(def) => boolean(path, def, value),
            Field::Integer(def) => integer(path, def, value),
            Field::String(def) => string(path, def, value),
            Field::Bytes(def) => bytes(path, def, value),
            Field::CidLink => match value.shape() {
                Shape::Link => Ok(()),
                _ => Err(path.error(K::NotCidLink)),
            },
            Field::Blob(def) => blob(path, def, value),
            Field::Array(def) => self.array(path, def, value, depth),
            Field::Object(def) => self.object(path, def, value, depth),
            Field::Ref(name) => self.def(path, name, value, depth),
            Field::Union(def) => self.union(path, def, value, depth),
            // A data-model object: not bytes or a link, and not a blob (its own kind in the data
            // model, though a map in JSON and CBOR).
            Field::Unknown => match value.shape() {
                Shape::Map if !is_typed_blob(value) => Ok(()),
                _ => Err(path.error(K::NotObject)),
            },
        }
    }

    /// Checks an object: its declared properties (others are allowed).
    pub(crate) fn object<N: Node>(
        &self,
        path: &Path<'_>,
        def: &ObjectDef,
        value: &N,
        depth: usize,
    ) -> Result {
        if !matches!(value.shape(), Shape::Map) {
            return Err(path.error(K::NotObject));
        }
        for (key, prop) in &def.properties {
            let is_required = || def.required.iter().any(|r| r == key);
            match value.get(key) {
                None if is_required() && !prop.has_default() => {
                    return Err(path.error(K::MissingProperty { name: key.clone() }));
                }
                None => {}
                Some(v)
                    if matches!(v.shape(), Shape::Null)
                        && def.nullable.iter().any(|n| n == key) => {}
                Some(v) => self.field(&Path::Key(path, key), prop, v, depth)?,
            }
        }
        Ok(())
    }

    fn array<N: Node>(&self, path: &Path<'_>, def: &ArrayDef, value: &N, depth: usize) -> Result {
        let Shape::Array(items) = value.shape() else {
            return Err(path.error(K::NotArray));
        };
        let len = items.len() as u64;
        if let Some(max) = def.max_length.filter(|max| len > *max) {
            return Err(path.error(K::ArrayTooLong { max }));
        }
        if let Some(min) = def.min_length.filter(|min| len < *min) {
            return Err(path.error(K::ArrayTooShort { min }));
        }
        for (i, item) in items.iter().enumerate() {
            self.field(&Path::Index(path, i), &def.items, item, depth)?;
        }
        Ok(())
    }

    fn union<N: Node>(&self, path: &Path<'_>, def: &UnionDef, value: &N, depth: usize) -> Result {
        let type_name = match (value.shape(), value.get("$type").map(Node::shape)) {
            (Shape::Map, Some(Shape::String(t))) => t,
            _ => return Err(path.error(K::MissingType)),
        };
        match def.find(type_name) {
            Some(name) => self.def(path, name, value, depth),
            None if def.closed => Err(path.error(K::ClosedUnion {
                refs: def.refs.clone(),
            })),
            None => Ok(()),
        }
    }
}

/// Whether `value` is a map with `$type: "blob"`.
fn is_typed_blob<N: Node>(value: &N) -> bool {
    matches!(
        value.get("$type").map(Node::shape),
        Some(Shape::String("blob"))
    )
}

/// One more level; an error past [`MAX_DEPTH`].
fn step(path: &Path<'_>, depth: usize) -> Result<usize> {
    if depth >= MAX_DEPTH {
        return Err(path.error(K::TooDeep { limit: MAX_DEPTH }));
    }
    Ok(depth + 1)
}

fn boolean<N: Node>(path: &Path<'_>, def: &BooleanDef, value: &N) -> Result {
    let Shape::Bool(b) = value.shape() else {
        return Err(path.error(K::NotBoolean));
    };
    match def.const_ {
        Some(c) if c != b => Err(path.error(K::Const {
            expected: c.to_string(),
        })),
        _ => Ok(()),
    }
}

fn integer<N: Node>(path: &Path<'_>, def: &IntegerDef, value: &N) -> Result {
    let Shape::Integer(i) = value.shape() else {
        return Err(path.error(K::NotInteger));
    };
    check_integer(path, def, i)
}

/// The integer constraints, in the reference's order.
pub(crate) fn check_integer(path: &Path<'_>, def: &IntegerDef, i: i64) -> Result {
    if let Some(c) = def.const_.filter(|c| *c != i) {
        return Err(path.error(K::Const {
            expected: c.to_string(),
        }));
    }
    if let Some(allowed) = def.enum_.as_ref().filter(|e| !e.contains(&i)) {
        return Err(path.error(K::Enum {
            allowed: allowed.iter().map(i64::to_string).collect(),
        }));
    }
    if let Some(max) = def.maximum.filter(|max| i > *max) {
        return Err(path.error(K::Maximum { max }));
    }
    if let Some(min) = def.minimum.filter(|min| i < *min) {
        return Err(path.error(K::Minimum { min }));
    }
    Ok(())
}

fn string<N: Node>(path: &Path<'_>, def: &StringDef, value: &N) -> Result {
    let Shape::String(s) = value.shape() else {
        return Err(path.error(K::NotString));
    };
    check_string(path, def, s)
}

/// The string constraints, in the reference's order: const, enum, UTF-8 length, graphemes,
/// format.
pub(crate) fn check_string(path: &Path<'_>, def: &StringDef, s: &str) -> Result {
    if let Some(c) = def.const_.as_ref().filter(|c| c.as_str() != s) {
        return Err(path.error(K::Const {
            expected: c.clone(),
        }));
    }
    if let Some(allowed) = def.enum_.as_ref().filter(|e| !e.iter().any(|v| v == s)) {
        return Err(path.error(K::Enum {
            allowed: allowed.clone(),
        }));
    }
    let bytes = s.len() as u64;
    if let Some(max) = def.max_length.filter(|max| bytes > *max) {
        return Err(path.error(K::StringTooLong { max }));
    }
    if let Some(min) = def.min_length.filter(|min| bytes < *min) {
        return Err(path.error(K::StringTooShort { min }));
    }
    // A string has at most as many graphemes as bytes: count only when that bound can fail.
    let needs_count =
        def.max_graphemes.is_some_and(|max| bytes > max) || def.min_graphemes.is_some();
    if needs_count {
        let graphemes = s.graphemes(true).count() as u64;
        if let Some(max) = def.max_graphemes.filter(|max| graphemes > *max) {
            return Err(path.error(K::TooManyGraphemes { max }));
        }
        if let Some(min) = def.min_graphemes.filter(|min| graphemes < *min) {
            return Err(path.error(K::TooFewGraphemes { min }));
        }
    }
    match def.format {
        Some(format) if !format_ok(format, s) => Err(path.error(K::Format { format })),
        _ => Ok(()),
    }
}

/// Whether `s` is of `format` (the parsers of `atp-syntax`).
pub(crate) fn format_ok(format: Format, s: &str) -> bool {
    use atp_syntax as syn;
    match format {
        Format::AtIdentifier => s.parse::<syn::AtIdentifier>().is_ok(),
        Format::AtUri => s.parse::<syn::AtUri>().is_ok(),
        Format::Cid => s.parse::<syn::CidString>().is_ok(),
        Format::Datetime => s.parse::<syn::Datetime>().is_ok(),
        Format::Did => s.parse::<syn::Did>().is_ok(),
        Format::Handle => s.parse::<syn::Handle>().is_ok(),
        Format::Nsid => s.parse::<syn::Nsid>().is_ok(),
        Format::Tid => s.parse::<syn::Tid>().is_ok(),
        Format::RecordKey => s.parse::<syn::RecordKey>().is_ok(),
        Format::Uri => s.parse::<syn::Uri>().is_ok(),
        Format::Language => s.parse::<syn::Language>().is_ok(),
    }
}

fn bytes<N: Node>(path: &Path<'_>, def: &LengthDef, value: &N) -> Result {
    let Shape::Bytes(len) = value.shape() else {
        return Err(path.error(K::NotBytes));
    };
    let len = len as u64;
    if let Some(max) = def.max_length.filter(|max| len > *max) {
        return Err(path.error(K::BytesTooLong { max }));
    }
    if let Some(min) = def.min_length.filter(|min| len < *min) {
        return Err(path.error(K::BytesTooShort { min }));
    }
    Ok(())
}

fn blob<N: Node>(path: &Path<'_>, def: &BlobDef, value: &N) -> Result {
    let blob = value.blob().ok_or_else(|| path.error(K::NotBlob))?;
    if blob.legacy {
        return Err(path.error(K::LegacyBlob));
    }
    if let Some(accept) = def
        .accept
        .as_ref()
        .filter(|accept| !mime_accepted(accept, &blob.mime_type))
    {
        return Err(path.error(K::BlobMimeType {
            mime_type: blob.mime_type,
            accept: accept.clone(),
        }));
    }
    match def.max_size {
        Some(max) if blob.size > max => Err(path.error(K::BlobTooLarge {
            size: blob.size,
            max,
        })),
        _ => Ok(()),
    }
}
