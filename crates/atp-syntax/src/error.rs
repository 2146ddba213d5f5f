//! The one error type of the crate: which identifier kind was refused, and why.

use std::fmt;

/// A string was refused by one of the parsers of this crate.
///
/// `kind` names the format that was expected; `reason` says what was wrong with the input. The input
/// itself is not stored (it can be 8 KiB of network input); callers that want to echo it have it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {reason}")]
pub struct SyntaxError {
    /// The format the input was checked against.
    pub kind: Kind,
    /// What was wrong with the input.
    pub reason: Reason,
}

impl SyntaxError {
    pub(crate) fn new(kind: Kind, reason: Reason) -> SyntaxError {
        SyntaxError { kind, reason }
    }
}

/// The identifier and string formats this crate parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// [`crate::Did`].
    Did,
    /// [`crate::Handle`].
    Handle,
    /// [`crate::Nsid`].
    Nsid,
    /// [`crate::RecordKey`].
    RecordKey,
    /// [`crate::Tid`].
    Tid,
    /// [`crate::AtIdentifier`].
    AtIdentifier,
    /// [`crate::AtUri`].
    AtUri,
    /// [`crate::Datetime`].
    Datetime,
    /// [`crate::Language`].
    Language,
    /// [`crate::CidString`].
    Cid,
    /// [`crate::Uri`].
    Uri,
}

impl Kind {
    /// The Lexicon string-format name of this kind (`"did"`, `"at-uri"`, `"record-key"`, ...).
    pub fn format_name(self) -> &'static str {
        match self {
            Kind::Did => "did",
            Kind::Handle => "handle",
            Kind::Nsid => "nsid",
            Kind::RecordKey => "record-key",
            Kind::Tid => "tid",
            Kind::AtIdentifier => "at-identifier",
            Kind::AtUri => "at-uri",
            Kind::Datetime => "datetime",
            Kind::Language => "language",
            Kind::Cid => "cid",
            Kind::Uri => "uri",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Kind::Did => "DID",
            Kind::Handle => "handle",
            Kind::Nsid => "NSID",
            Kind::RecordKey => "record key",
            Kind::Tid => "TID",
            Kind::AtIdentifier => "at-identifier",
            Kind::AtUri => "AT-URI",
            Kind::Datetime => "datetime",
            Kind::Language => "language tag",
            Kind::Cid => "CID string",
            Kind::Uri => "URI",
        };
        f.write_str(name)
    }
}

/// Why an input was refused. Byte offsets (`at`) count from the start of the checked string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Reason {
    /// The input is the empty string.
    #[error("empty")]
    Empty,
    /// The input is longer than the format allows.
    #[error("too long ({len} bytes, at most {max})")]
    TooLong {
        /// Length of the input in bytes.
        len: usize,
        /// Maximum length in bytes.
        max: usize,
    },
    /// The input is shorter than the format allows.
    #[error("too short ({len} bytes, at least {min})")]
    TooShort {
        /// Length of the input in bytes.
        len: usize,
        /// Minimum length in bytes.
        min: usize,
    },
    /// The format has a fixed length and the input has another.
    #[error("wrong length ({len} bytes, expected {expected})")]
    WrongLength {
        /// Length of the input in bytes.
        len: usize,
        /// The required length in bytes.
        expected: usize,
    },
    /// A character that the format does not allow at that place.
    #[error("character {ch:?} not allowed at byte {at}")]
    InvalidChar {
        /// The refused character.
        ch: char,
        /// Its byte offset.
        at: usize,
    },
    /// Something specific was required at a position and is missing.
    #[error("expected {what} at byte {at}")]
    Expected {
        /// What was expected (`"did:"`, `"digit"`, `"'T'"`, ...).
        what: &'static str,
        /// Byte offset where it was expected.
        at: usize,
    },
    /// The input ends with a character that is allowed elsewhere but not last.
    #[error("must not end with {ch:?}")]
    InvalidEnd {
        /// The last character.
        ch: char,
    },
    /// A dot-separated label or `/`-separated segment is empty.
    #[error("segment {index} is empty")]
    EmptySegment {
        /// Zero-based index of the segment.
        index: usize,
    },
    /// A dot-separated label is longer than 63 characters.
    #[error("segment {index} is too long ({len} bytes, at most {max})")]
    SegmentTooLong {
        /// Zero-based index of the segment.
        index: usize,
        /// Its length in bytes.
        len: usize,
        /// Maximum length in bytes.
        max: usize,
    },
    /// A domain label starts or ends with a hyphen.
    #[error("segment {index} starts or ends with '-'")]
    HyphenAtEdge {
        /// Zero-based index of the segment.
        index: usize,
    },
    /// A segment that must start with a letter starts with a digit (a handle's TLD, an NSID's first
    /// or last segment).
    #[error("segment {index} must start with a letter")]
    LeadingDigit {
        /// Zero-based index of the segment.
        index: usize,
    },
    /// Too few dot-separated segments.
    #[error("{found} segments, at least {min} required")]
    TooFewSegments {
        /// Number of segments found.
        found: usize,
        /// Minimum number of segments.
        min: usize,
    },
    /// Too many `/`-separated path segments.
    #[error("{found} path segments, at most {max} allowed")]
    TooManySegments {
        /// Number of segments found.
        found: usize,
        /// Maximum number of segments.
        max: usize,
    },
    /// A value the format reserves (a record key of `.` or `..`).
    #[error("{value:?} is reserved")]
    Reserved {
        /// The reserved value.
        value: &'static str,
    },
    /// A TID's first character sets the top bit of the 65-bit encoding.
    #[error("first character sets the high bit")]
    HighBitSet,
    /// One component of a composite identifier is invalid.
    #[error("invalid {component} part: {reason}")]
    Component {
        /// The kind of the component (the authority of an AT-URI is [`Kind::Did`] or
        /// [`Kind::Handle`], its path segments [`Kind::Nsid`] and [`Kind::RecordKey`]).
        component: Kind,
        /// Why the component was refused.
        reason: Box<Reason>,
    },
    /// A calendar or clock field outside its range (month 13, day 31 in April, hour 25, ...).
    #[error("{field} {value} out of range")]
    OutOfRange {
        /// The field (`"month"`, `"day"`, `"hour"`, `"minute"`, `"second"`, `"offset hour"`, ...).
        field: &'static str,
        /// The value found.
        value: u32,
    },
    /// The `-00:00` "unknown local offset" of RFC 3339, which ISO 8601 does not allow.
    #[error("offset -00:00 is not allowed (use Z or +00:00)")]
    NegativeZeroOffset,
    /// The instant, normalised to UTC, is before year 0000 or after year 9999.
    #[error("year {year} (normalised to UTC) is outside 0000-9999")]
    YearOutOfRange {
        /// The UTC year.
        year: i32,
    },
    /// The input does not follow the grammar of the format.
    #[error("not well-formed: {what}")]
    Malformed {
        /// Which rule failed.
        what: &'static str,
    },
    /// A BCP-47 variant subtag or extension singleton is repeated (RFC 5646 section 2.2.9).
    #[error("subtag {subtag:?} is repeated")]
    DuplicateSubtag {
        /// The repeated subtag, lower-cased.
        subtag: String,
    },
    /// An AT-URI built with a record key but no collection.
    #[error("a record key needs a collection")]
    RecordKeyWithoutCollection,
    /// A CIDv0 (`Qm...`) string, which atproto does not allow.
    #[error("CIDv0 is not allowed")]
    CidV0,
}
