//! The errors: [`LexError`] for values that do not match a schema, [`SchemaError`] for schema
//! documents that are not valid Lexicon, [`LoadError`] for reading them.
//!
//! Value messages follow the reference implementation's wording (`Record/text must not be longer
//! than 300 graphemes`), so clients that match on them keep working.

use std::fmt;
use std::path::PathBuf;

/// Why a value does not match its schema: where (`Record/embed/images/0/alt`) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path} {kind}")]
pub struct LexError {
    /// The failing field: a root name (`Record`, `Input`, `Params`) then `/`-separated keys and
    /// array indices.
    pub path: String,
    /// What is wrong with it.
    pub kind: LexErrorKind,
}

/// A string format of the Lexicon language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `at-identifier`: a handle or a DID.
    AtIdentifier,
    /// `at-uri`.
    AtUri,
    /// `cid`: a CID in string form.
    Cid,
    /// `datetime`.
    Datetime,
    /// `did`.
    Did,
    /// `handle`.
    Handle,
    /// `nsid`.
    Nsid,
    /// `tid`.
    Tid,
    /// `record-key`.
    RecordKey,
    /// `uri`: a generic URI.
    Uri,
    /// `language`: a BCP 47 tag.
    Language,
}

impl Format {
    /// The format named `name` in a schema, if it is one of the Lexicon formats.
    pub fn from_name(name: &str) -> Option<Format> {
        Some(match name {
            "at-identifier" => Format::AtIdentifier,
            "at-uri" => Format::AtUri,
            "cid" => Format::Cid,
            "datetime" => Format::Datetime,
            "did" => Format::Did,
            "handle" => Format::Handle,
            "nsid" => Format::Nsid,
            "tid" => Format::Tid,
            "record-key" => Format::RecordKey,
            "uri" => Format::Uri,
            "language" => Format::Language,
            _ => return None,
        })
    }

    /// What a value of this format must be, as the reference words it.
    fn requirement(self) -> &'static str {
        match self {
            Format::AtIdentifier => "a valid did or a handle",
            Format::AtUri => "a valid at-uri",
            Format::Cid => "a cid string",
            Format::Datetime => "an valid atproto datetime (both RFC-3339 and ISO-8601)",
            Format::Did => "a valid did",
            Format::Handle => "a valid handle",
            Format::Nsid => "a valid nsid",
            Format::Tid => "a valid TID",
            Format::RecordKey => "a valid Record Key",
            Format::Uri => "a uri",
            Format::Language => "a well-formed BCP 47 language tag",
        }
    }
}

/// The kinds of [`LexError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LexErrorKind {
    /// Not an object (map), where an object, a record or an `unknown` value is expected.
    #[error("must be an object")]
    NotObject,
    /// Not an array.
    #[error("must be an array")]
    NotArray,
    /// Not a string.
    #[error("must be a string")]
    NotString,
    /// Not an integer (a float, a string, ...).
    #[error("must be an integer")]
    NotInteger,
    /// Not a boolean.
    #[error("must be a boolean")]
    NotBoolean,
    /// Not a byte string.
    #[error("must be a byte array")]
    NotBytes,
    /// Not a CID link.
    #[error("must be a CID")]
    NotCidLink,
    /// Not a blob reference.
    #[error("should be a blob ref")]
    NotBlob,
    /// A legacy (`{cid, mimeType}`) blob reference, which new records may not carry.
    #[error("should be a blob ref, not a legacy blob ref")]
    LegacyBlob,
    /// A required property is absent.
    #[error("must have the property \"{name}\"")]
    MissingProperty {
        /// The property.
        name: String,
    },
    /// Not the schema's `const` value.
    #[error("must be {expected}")]
    Const {
        /// The constant, as text.
        expected: String,
    },
    /// Not one of the schema's `enum` values.
    #[error("must be one of ({})", allowed.join("|"))]
    Enum {
        /// The allowed values, as text.
        allowed: Vec<String>,
    },
    /// An integer above `maximum`.
    #[error("can not be greater than {max}")]
    Maximum {
        /// The maximum.
        max: i64,
    },
    /// An integer below `minimum`.
    #[error("can not be less than {min}")]
    Minimum {
        /// The minimum.
        min: i64,
    },
    /// A string longer than `maxLength` UTF-8 bytes.
    #[error("must not be longer than {max} characters")]
    StringTooLong {
        /// The limit, in UTF-8 bytes.
        max: u64,
    },
    /// A string shorter than `minLength` UTF-8 bytes.
    #[error("must not be shorter than {min} characters")]
    StringTooShort {
        /// The limit, in UTF-8 bytes.
        min: u64,
    },
    /// A string with more than `maxGraphemes` grapheme clusters.
    #[error("must not be longer than {max} graphemes")]
    TooManyGraphemes {
        /// The limit.
        max: u64,
    },
    /// A string with fewer than `minGraphemes` grapheme clusters.
    #[error("must not be shorter than {min} graphemes")]
    TooFewGraphemes {
        /// The limit.
        min: u64,
    },
    /// A string that is not of its `format`.
    #[error("must be {}", format.requirement())]
    Format {
        /// The format.
        format: Format,
    },
    /// A byte string longer than `maxLength`.
    #[error("must not be larger than {max} bytes")]
    BytesTooLong {
        /// The limit.
        max: u64,
    },
    /// A byte string shorter than `minLength`.
    #[error("must not be smaller than {min} bytes")]
    BytesTooShort {
        /// The limit.
        min: u64,
    },
    /// An array with more than `maxLength` elements.
    #[error("must not have more than {max} elements")]
    ArrayTooLong {
        /// The limit.
        max: u64,
    },
    /// An array with fewer than `minLength` elements.
    #[error("must not have fewer than {min} elements")]
    ArrayTooShort {
        /// The limit.
        min: u64,
    },
    /// A blob whose declared size is above `maxSize`.
    #[error("must be a blob of at most {max} bytes, not {size}")]
    BlobTooLarge {
        /// The declared size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A blob whose declared MIME type is not in `accept`.
    #[error("must be a blob of type {}, not {mime_type}", accept.join(", "))]
    BlobMimeType {
        /// The declared type.
        mime_type: String,
        /// The accepted patterns.
        accept: Vec<String>,
    },
    /// A union member without a string `$type`.
    #[error("must be an object which includes the \"$type\" property")]
    MissingType,
    /// A closed union member whose `$type` is not one of the refs.
    #[error("$type must be one of {}", refs.join(", "))]
    ClosedUnion {
        /// The union's refs.
        refs: Vec<String>,
    },
    /// A record whose `$type` is not the type it is validated as.
    #[error("$type must be {expected}, got {got}")]
    RecordType {
        /// The record type.
        expected: String,
        /// The value's `$type`.
        got: String,
    },
    /// The schema refers to a definition the catalog does not hold.
    #[error("refers to {reference}, which is not in the catalog")]
    UnresolvedRef {
        /// The missing definition (`nsid#name`).
        reference: String,
    },
    /// The schema names a definition that cannot describe a value (a query, a subscription, ...).
    #[error("refers to {reference}, which is a {def_type}, not a value type")]
    NotAValueType {
        /// The definition (`nsid#name`).
        reference: String,
        /// Its Lexicon type.
        def_type: &'static str,
    },
    /// A record validated as a type whose definition is not a record.
    #[error("must be a record, but its type is a {def_type}")]
    NotARecord {
        /// The definition's Lexicon type.
        def_type: &'static str,
    },
    /// The value (or the chain of refs describing it) nests deeper than the validator follows.
    #[error("is nested more than {limit} levels deep")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
}

impl LexError {
    /// An error at `path`.
    pub fn new(path: impl Into<String>, kind: LexErrorKind) -> Self {
        LexError {
            path: path.into(),
            kind,
        }
    }
}

/// Why a schema document is not valid Lexicon.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("lexicon {id}: {at}: {reason}")]
pub struct SchemaError {
    /// The document's `id` as written (or `?` if it has none).
    pub id: String,
    /// Where in the document (`defs/main/record/properties/text`).
    pub at: String,
    /// What is wrong.
    pub reason: SchemaReason,
}

/// The kinds of [`SchemaError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaReason {
    /// The document or a definition is not a JSON object.
    #[error("must be a JSON object")]
    NotAnObject,
    /// `lexicon` is not the integer 1.
    #[error("\"lexicon\" must be the integer 1")]
    BadVersion,
    /// `id` is missing, not a string or not an NSID.
    #[error("\"id\" must be a valid NSID")]
    BadId,
    /// A required key is missing.
    #[error("missing \"{key}\"")]
    Missing {
        /// The key.
        key: &'static str,
    },
    /// A key holds the wrong JSON type.
    #[error("\"{key}\" must be {expected}")]
    WrongType {
        /// The key.
        key: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// A `type` this implementation does not know.
    #[error("unknown type {type_name:?}")]
    UnknownType {
        /// The type.
        type_name: String,
    },
    /// A type used where the language does not allow it (a `ref` as a named definition, a
    /// `record` inside an object, ...).
    #[error("type {type_name:?} is not allowed here")]
    NotAllowedHere {
        /// The type.
        type_name: String,
    },
    /// A primary type (record, query, procedure, subscription, permission set) not named `main`.
    #[error("a {type_name} definition must be named \"main\"")]
    PrimaryNotMain {
        /// The type.
        type_name: String,
    },
    /// An unknown string `format`.
    #[error("unknown string format {format:?}")]
    UnknownFormat {
        /// The format.
        format: String,
    },
    /// A ref that is not `#name`, `nsid` or `nsid#name`.
    #[error("bad reference {reference:?}")]
    BadRef {
        /// The reference.
        reference: String,
    },
    /// A `required` or `nullable` name that is not a property.
    #[error("{list} names {name:?}, which is not a property")]
    UndeclaredProperty {
        /// `required` or `nullable`.
        list: &'static str,
        /// The name.
        name: String,
    },
    /// Two documents with the same `id`.
    #[error("the catalog already holds this id")]
    Duplicate,
}

/// Why a directory of schemas could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file or directory could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not JSON.
    #[error("{path}: not JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// A file is not a valid Lexicon document.
    #[error("{path}: {source}")]
    Schema {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: SchemaError,
    },
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::AtIdentifier => "at-identifier",
            Format::AtUri => "at-uri",
            Format::Cid => "cid",
            Format::Datetime => "datetime",
            Format::Did => "did",
            Format::Handle => "handle",
            Format::Nsid => "nsid",
            Format::Tid => "tid",
            Format::RecordKey => "record-key",
            Format::Uri => "uri",
            Format::Language => "language",
        })
    }
}
