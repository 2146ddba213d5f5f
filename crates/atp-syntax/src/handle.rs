//! Handles: DNS names used as human-readable account names (<https://atproto.com/specs/handle>).

use crate::domain::{check_label, starts_with_digit};
use crate::error::{Kind, Reason, SyntaxError};

/// Longest handle, in bytes.
pub const MAX_HANDLE_LEN: usize = 253;

string_newtype!(
    /// A syntactically valid handle, such as `alice.bsky.social`.
    ///
    /// At least two dot-separated labels of ASCII letters, digits and hyphens (1 to 63 bytes each,
    /// no hyphen at either end), at most 253 bytes, and a last label (TLD) that starts with a letter.
    /// The value is kept exactly as given; handles compare case-insensitively, so compare
    /// [`Handle::normalized`] forms. Whether a TLD is allowed for registration (`.local`, `.arpa`,
    /// `.invalid`, ...) is policy, not syntax, and is not checked here.
    Handle,
    check
);

impl Handle {
    /// The handle lower-cased, the form to compare and store as a lookup key.
    pub fn normalized(&self) -> Handle {
        Handle(self.0.to_ascii_lowercase())
    }
}

fn check(s: &str) -> Result<(), SyntaxError> {
    check_reason(s).map_err(|reason| SyntaxError::new(Kind::Handle, reason))
}

fn check_reason(s: &str) -> Result<(), Reason> {
    if s.is_empty() {
        return Err(Reason::Empty);
    }
    if s.len() > MAX_HANDLE_LEN {
        return Err(Reason::TooLong {
            len: s.len(),
            max: MAX_HANDLE_LEN,
        });
    }
    let mut offset = 0;
    let mut count = 0;
    let mut last = "";
    for (index, label) in s.split('.').enumerate() {
        check_label(label, index, offset)?;
        offset += label.len() + 1;
        count = index + 1;
        last = label;
    }
    if count < 2 {
        return Err(Reason::TooFewSegments {
            found: count,
            min: 2,
        });
    }
    if starts_with_digit(last) {
        return Err(Reason::LeadingDigit { index: count - 1 });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(s: &str) -> Reason {
        s.parse::<Handle>().unwrap_err().reason
    }

    #[test]
    fn accepts_and_keeps_case() {
        let h: Handle = "Alice.BSKY.social".parse().unwrap();
        assert_eq!(h.as_str(), "Alice.BSKY.social");
        assert_eq!(h.normalized().as_str(), "alice.bsky.social");
        assert!("xn--ls8h.test".parse::<Handle>().is_ok());
        assert!("4chan.o-g".parse::<Handle>().is_ok());
    }

    #[test]
    fn reasons() {
        assert_eq!(reason(""), Reason::Empty);
        assert_eq!(reason("john"), Reason::TooFewSegments { found: 1, min: 2 });
        assert_eq!(reason("john.0"), Reason::LeadingDigit { index: 1 });
        assert_eq!(reason("john..test"), Reason::EmptySegment { index: 1 });
        assert_eq!(reason("john.test."), Reason::EmptySegment { index: 2 });
        assert_eq!(reason("jo_hn.test"), Reason::InvalidChar { ch: '_', at: 2 });
        assert_eq!(
            reason("bücher.test"),
            Reason::InvalidChar { ch: 'ü', at: 1 }
        );
        assert_eq!(reason("john-.test"), Reason::HyphenAtEdge { index: 0 });
        assert!(matches!(reason(&"a.".repeat(127)), Reason::TooLong { .. }));
    }

    #[test]
    fn length_limit_is_253() {
        let label = "a".repeat(63);
        let ok = format!("{label}.{label}.{label}.{}.test", "d".repeat(56));
        assert_eq!(ok.len(), 253);
        assert!(ok.parse::<Handle>().is_ok());
        let long = format!("x{ok}");
        assert!(matches!(reason(&long), Reason::TooLong { len: 254, .. }));
    }

    #[test]
    fn serde_goes_through_the_parser() {
        let h: Handle = serde_json::from_str("\"john.test\"").unwrap();
        assert_eq!(serde_json::to_string(&h).unwrap(), "\"john.test\"");
        assert!(serde_json::from_str::<Handle>("\"john\"").is_err());
    }
}
