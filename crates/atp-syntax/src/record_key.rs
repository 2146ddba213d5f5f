//! Record keys, the last segment of a record path (<https://atproto.com/specs/record-key>).

use crate::error::{Kind, Reason, SyntaxError};
use crate::tid::Tid;

/// Longest record key, in bytes.
pub const MAX_RECORD_KEY_LEN: usize = 512;

string_newtype!(
    /// A syntactically valid record key: 1 to 512 bytes of ASCII letters, digits and `._:~-`, and
    /// neither `.` nor `..`. Case-sensitive. Which keys a collection accepts (`tid`, `literal:self`,
    /// `nsid`, `any`) is a Lexicon rule, not syntax.
    RecordKey,
    check
);

impl From<Tid> for RecordKey {
    /// Every TID is a valid record key (the usual key of a new record).
    fn from(tid: Tid) -> RecordKey {
        RecordKey(tid.into_string())
    }
}

fn check(s: &str) -> Result<(), SyntaxError> {
    check_reason(s).map_err(|reason| SyntaxError::new(Kind::RecordKey, reason))
}

fn check_reason(s: &str) -> Result<(), Reason> {
    if s.is_empty() {
        return Err(Reason::Empty);
    }
    if s.len() > MAX_RECORD_KEY_LEN {
        return Err(Reason::TooLong {
            len: s.len(),
            max: MAX_RECORD_KEY_LEN,
        });
    }
    if let Some((at, ch)) = s.char_indices().find(|&(_, c)| !is_key_char(c)) {
        return Err(Reason::InvalidChar { ch, at });
    }
    match s {
        "." => Err(Reason::Reserved { value: "." }),
        ".." => Err(Reason::Reserved { value: ".." }),
        _ => Ok(()),
    }
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '~' | '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(s: &str) -> Reason {
        s.parse::<RecordKey>().unwrap_err().reason
    }

    #[test]
    fn accepts() {
        for ok in ["self", "literal:self", "...", "~1.2-3_", "3jzfcijpj2z2a"] {
            assert_eq!(ok.parse::<RecordKey>().unwrap().as_str(), ok);
        }
        assert!("o".repeat(512).parse::<RecordKey>().is_ok());
    }

    #[test]
    fn reasons() {
        assert_eq!(reason(""), Reason::Empty);
        assert_eq!(reason("."), Reason::Reserved { value: "." });
        assert_eq!(reason(".."), Reason::Reserved { value: ".." });
        assert_eq!(reason("alpha/beta"), Reason::InvalidChar { ch: '/', at: 5 });
        assert_eq!(reason("dHJ1ZQ=="), Reason::InvalidChar { ch: '=', at: 6 });
        assert_eq!(
            reason(&"o".repeat(513)),
            Reason::TooLong { len: 513, max: 512 }
        );
    }

    #[test]
    fn from_tid() {
        let tid = Tid::from_parts(1, 2);
        assert_eq!(RecordKey::from(tid.clone()).as_str(), tid.as_str());
    }
}
