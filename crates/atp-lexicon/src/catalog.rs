//! [`Catalog`]: a set of Lexicon documents, and the entry points that validate records, XRPC
//! parameters and XRPC bodies against them.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path as FsPath, PathBuf};

use atp_syntax::Nsid;

use crate::error::{Format, LexError, LexErrorKind as K, LoadError, SchemaError, SchemaReason};
use crate::node::{Node, Shape};
use crate::parse::parse_doc;
use crate::schema::{Def, Field, MethodDef, ObjectDef};
use crate::validate::{Path, Validator, format_ok};

/// What validating a record found out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordValidity {
    /// The record type is in the catalog and the record matches it.
    Valid,
    /// The record type is not in the catalog, so the record was not checked.
    Unknown,
}

impl RecordValidity {
    /// The `validationStatus` of the repo write methods: `"valid"` or `"unknown"`.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordValidity::Valid => "valid",
            RecordValidity::Unknown => "unknown",
        }
    }
}

/// Lexicon documents, parsed once; definitions are looked up by full name (`nsid#name`).
///
/// References need not resolve when documents are added (a catalog may be partial); validating
/// a value that reaches a missing definition fails with [`K::UnresolvedRef`].
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    defs: HashMap<String, Def>,
    ids: BTreeSet<String>,
}

/// The document local refs (`#name`) given to the public API would resolve in: none, so they
/// are refused (the empty string is not an NSID).
const NO_DOCUMENT: &str = "";

/// The JSON encoding of XRPC bodies that have a schema.
const JSON: &str = "application/json";

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one Lexicon document; on error the catalog is unchanged.
    pub fn add(&mut self, doc: &serde_json::Value) -> Result<(), SchemaError> {
        let doc = parse_doc(doc)?;
        if self.ids.contains(&doc.id) {
            return Err(SchemaError {
                id: doc.id,
                at: String::new(),
                reason: SchemaReason::Duplicate,
            });
        }
        for (name, def) in doc.defs {
            self.defs.insert(format!("{}#{name}", doc.id), def);
        }
        self.ids.insert(doc.id);
        Ok(())
    }

    /// A catalog of `(name, JSON text)` documents; `name` (a file name) only labels errors.
    pub fn from_sources<'a>(
        sources: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Catalog, LoadError> {
        let mut catalog = Catalog::new();
        for (name, text) in sources {
            catalog.add_text(PathBuf::from(name), text)?;
        }
        Ok(catalog)
    }

    /// A catalog of every `*.json` file under `dir`, recursively (symbolic links not followed).
    pub fn from_dir(dir: &FsPath) -> Result<Catalog, LoadError> {
        let mut files = Vec::new();
        collect_json_files(dir, &mut files)?;
        files.sort();
        let mut catalog = Catalog::new();
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|source| LoadError::Io {
                path: file.clone(),
                source,
            })?;
            catalog.add_text(file, &text)?;
        }
        Ok(catalog)
    }

    fn add_text(&mut self, path: PathBuf, text: &str) -> Result<(), LoadError> {
        let json = match serde_json::from_str(text) {
            Ok(json) => json,
            Err(source) => return Err(LoadError::Json { path, source }),
        };
        self.add(&json)
            .map_err(|source| LoadError::Schema { path, source })
    }

    /// How many documents the catalog holds.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the catalog holds no document.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Whether the catalog holds the document `id`.
    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// Whether the catalog holds the definition `reference` (`nsid` for its `main`, or
    /// `nsid#name`).
    pub fn contains_def(&self, reference: &str) -> bool {
        crate::parse::resolve_ref(NO_DOCUMENT, reference)
            .is_ok_and(|name| self.defs.contains_key(&name))
    }

    /// Every reference (of a `ref` or a `union`) to a definition the catalog does not hold, as
    /// `(from, to)` full names, sorted.
    pub fn unresolved_refs(&self) -> Vec<(String, String)> {
        let mut out = BTreeSet::new();
        for (name, def) in &self.defs {
            let mut fields: Vec<&Field> = match def {
                Def::Value(field) => vec![field],
                Def::Record(record) => record.record.properties.values().collect(),
                Def::Query(m) | Def::Procedure(m) | Def::Subscription(m) => m
                    .parameters
                    .iter()
                    .flat_map(|p| p.properties.values())
                    .chain(m.input.iter().filter_map(|i| i.schema.as_ref()))
                    .collect(),
                Def::PermissionSet | Def::Token => Vec::new(),
            };
            while let Some(field) = fields.pop() {
                match field {
                    Field::Ref(target) => fields_target(&mut out, self, name, target),
                    Field::Union(union) => {
                        for target in &union.refs {
                            fields_target(&mut out, self, name, target);
                        }
                    }
                    Field::Array(array) => fields.push(&array.items),
                    Field::Object(object) => fields.extend(object.properties.values()),
                    _ => {}
                }
            }
        }
        out.into_iter().collect()
    }

    /// The definition named `name` (`nsid#name`).
    pub(crate) fn def(&self, name: &str) -> Option<&Def> {
        self.defs.get(name)
    }

    fn main(&self, nsid: &str) -> Option<&Def> {
        self.defs.get(&format!("{nsid}#main"))
    }

    /// The record key type (`tid`, `nsid`, `any`, `literal:self`) of a record type in the catalog.
    pub fn record_key(&self, nsid: &Nsid) -> Option<&str> {
        match self.main(nsid.as_str()) {
            Some(Def::Record(record)) => Some(&record.key),
            _ => None,
        }
    }

    /// Validates a record of type `nsid` (its `$type` must be `nsid`).
    ///
    /// A type the catalog does not hold → `Ok(Unknown)`, nothing checked. A type it holds that
    /// is not a record type, or a record that does not match → the error, with a path rooted at
    /// `Record`. As the reference PDS does, a string `createdAt` must also be a datetime.
    pub fn validate_record<N: Node>(
        &self,
        nsid: &Nsid,
        record: &N,
    ) -> Result<RecordValidity, LexError> {
        let root = Path::Root("Record");
        let def = match self.main(nsid.as_str()) {
            None => return Ok(RecordValidity::Unknown),
            Some(Def::Record(def)) => def,
            Some(other) => {
                return Err(root.error(K::NotARecord {
                    def_type: other.type_name(),
                }));
            }
        };
        if !matches!(record.shape(), Shape::Map) {
            return Err(root.error(K::NotObject));
        }
        match record.get("$type").map(Node::shape) {
            Some(Shape::String(t)) if t == nsid.as_str() => {}
            Some(Shape::String(t)) => {
                return Err(root.error(K::RecordType {
                    expected: nsid.to_string(),
                    got: t.to_owned(),
                }));
            }
            _ => return Err(Path::Key(&root, "$type").error(K::NotString)),
        }
        let validator = Validator { catalog: self };
        validator.object(&root, &def.record, record, 0)?;
        if let Some(Shape::String(created)) = record.get("createdAt").map(Node::shape)
            && !format_ok(Format::Datetime, created)
        {
            let format = Format::Datetime;
            return Err(Path::Key(&root, "createdAt").error(K::Format { format }));
        }
        Ok(RecordValidity::Valid)
    }

    /// Validates `value` against the definition `reference` (`nsid`, `nsid#name`), with error
    /// paths rooted at `root`.
    pub fn validate<N: Node>(
        &self,
        reference: &str,
        value: &N,
        root: &str,
    ) -> Result<(), LexError> {
        let path = Path::Root(root);
        let name = crate::parse::resolve_ref(NO_DOCUMENT, reference).map_err(|_| {
            path.error(K::UnresolvedRef {
                reference: reference.to_owned(),
            })
        })?;
        Validator { catalog: self }.def(&path, &name, value, 0)
    }

    fn method(&self, method: &str) -> Option<&MethodDef> {
        match self.main(method)? {
            Def::Query(m) | Def::Procedure(m) | Def::Subscription(m) => Some(m),
            _ => None,
        }
    }

    /// Whether `method` is a procedure whose input is JSON with a schema.
    pub fn json_input(&self, method: &str) -> bool {
        self.input_schema(method).is_some()
    }

    fn input_schema(&self, method: &str) -> Option<&Field> {
        let input = self.method(method)?.input.as_ref()?;
        (input.encoding == JSON)
            .then_some(input.schema.as_ref())
            .flatten()
    }

    /// Validates the JSON body of a call to `method`, with paths rooted at `Input`. Methods not
    /// in the catalog, and bodies without a JSON schema, pass.
    pub fn validate_input<N: Node>(&self, method: &str, body: &N) -> Result<(), LexError> {
        let Some(schema) = self.input_schema(method) else {
            return Ok(());
        };
        let root = Path::Root("Input");
        if !matches!(body.shape(), Shape::Map) {
            return Err(root.error(K::NotObject));
        }
        Validator { catalog: self }.field(&root, schema, body, 0)
    }

    /// Validates the query parameters of a call to `method`, given as decoded `(name, value)`
    /// pairs in order (array parameters repeat their name). Values are read as their declared
    /// type (`true`/`false`, decimal integers). Parameters not in the schema are ignored, as
    /// the reference does; a non-array parameter given twice is checked on its first value.
    /// Errors name the parameter (`limit can not be greater than 100`), or `Params` for a
    /// missing one. Methods not in the catalog pass.
    pub fn validate_params(
        &self,
        method: &str,
        params: &[(String, String)],
    ) -> Result<(), LexError> {
        match self.method(method).and_then(|m| m.parameters.as_ref()) {
            Some(def) => self.check_params(def, params),
            None => Ok(()),
        }
    }

    fn check_params(&self, def: &ObjectDef, params: &[(String, String)]) -> Result<(), LexError> {
        for name in &def.required {
            let has_default = def.properties.get(name).is_some_and(Field::has_default);
            if param_values(params, name).next().is_none() && !has_default {
                return Err(Path::Root("Params").error(K::MissingProperty { name: name.clone() }));
            }
        }
        let validator = Validator { catalog: self };
        for (name, field) in &def.properties {
            let path = Path::Root(name);
            if let Field::Array(array) = field {
                let items: Vec<serde_json::Value> = param_values(params, name)
                    .map(|v| param_value(&array.items, v))
                    .collect();
                if !items.is_empty() {
                    validator.field(&path, field, &serde_json::Value::Array(items), 0)?;
                }
            } else if let Some(raw) = param_values(params, name).next() {
                validator.field(&path, field, &param_value(field, raw), 0)?;
            }
        }
        Ok(())
    }
}

fn fields_target(out: &mut BTreeSet<(String, String)>, catalog: &Catalog, from: &str, to: &str) {
    if !catalog.defs.contains_key(to) {
        out.insert((from.to_owned(), to.to_owned()));
    }
}

/// The values given for parameter `name`, in order.
fn param_values<'p>(
    params: &'p [(String, String)],
    name: &'p str,
) -> impl Iterator<Item = &'p str> + 'p {
    params
        .iter()
        .filter(move |(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A query-string value as the JSON value of its declared type (left a string when it does not
/// parse, so the type check reports it).
fn param_value(field: &Field, raw: &str) -> serde_json::Value {
    use serde_json::Value as J;
    match field {
        Field::Boolean(_) => match raw {
            "true" => J::Bool(true),
            "false" => J::Bool(false),
            _ => J::String(raw.to_owned()),
        },
        Field::Integer(_) => raw
            .parse::<i64>()
            .map_or_else(|_| J::String(raw.to_owned()), J::from),
        // `unknown` parameters are not checked: give them an object.
        Field::Unknown => J::Object(serde_json::Map::new()),
        _ => J::String(raw.to_owned()),
    }
}

fn collect_json_files(dir: &FsPath, out: &mut Vec<PathBuf>) -> Result<(), LoadError> {
    let io = |source| LoadError::Io {
        path: dir.to_owned(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let kind = entry.file_type().map_err(io)?;
        let path = entry.path();
        if kind.is_dir() {
            collect_json_files(&path, out)?;
        } else if kind.is_file() && path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    Ok(())
}
