//! Namespaced identifiers for Lexicon schemas (<https://atproto.com/specs/nsid>).

use crate::domain::{MAX_LABEL_LEN, check_label, starts_with_digit};
use crate::error::{Kind, Reason, SyntaxError};

/// Longest NSID, in bytes.
pub const MAX_NSID_LEN: usize = 317;

string_newtype!(
    /// A syntactically valid NSID, such as `app.bsky.feed.post`.
    ///
    /// At least three dot-separated segments, at most 317 bytes. All but the last form the reversed
    /// domain authority: DNS labels (ASCII letters, digits, hyphens, 1 to 63 bytes, no hyphen at
    /// either end), the first of which starts with a letter. The last is the name: 1 to 63 ASCII
    /// letters and digits, starting with a letter. Kept as given (the authority is
    /// case-insensitive, the name case-sensitive).
    Nsid,
    check
);

impl Nsid {
    /// The authority domain in DNS order and lower-cased: `app.bsky.feed.post` gives `feed.bsky.app`.
    pub fn authority(&self) -> String {
        let mut segments: Vec<&str> = self.0.split('.').collect();
        segments.pop();
        segments.reverse();
        segments.join(".").to_ascii_lowercase()
    }

    /// The name segment: `app.bsky.feed.post` gives `post`.
    pub fn name(&self) -> &str {
        self.0.rsplit('.').next().unwrap_or_default()
    }
}

fn check(s: &str) -> Result<(), SyntaxError> {
    check_reason(s).map_err(|reason| SyntaxError::new(Kind::Nsid, reason))
}

fn check_reason(s: &str) -> Result<(), Reason> {
    if s.is_empty() {
        return Err(Reason::Empty);
    }
    if s.len() > MAX_NSID_LEN {
        return Err(Reason::TooLong {
            len: s.len(),
            max: MAX_NSID_LEN,
        });
    }
    let count = s.split('.').count();
    if count < 3 {
        return Err(Reason::TooFewSegments {
            found: count,
            min: 3,
        });
    }
    let mut offset = 0;
    for (index, segment) in s.split('.').enumerate() {
        if index + 1 == count {
            check_name(segment, index, offset)?;
        } else {
            check_label(segment, index, offset)?;
            if index == 0 && starts_with_digit(segment) {
                return Err(Reason::LeadingDigit { index });
            }
        }
        offset += segment.len() + 1;
    }
    Ok(())
}

fn check_name(name: &str, index: usize, offset: usize) -> Result<(), Reason> {
    if name.is_empty() {
        return Err(Reason::EmptySegment { index });
    }
    if let Some((at, ch)) = name
        .char_indices()
        .find(|&(_, c)| !c.is_ascii_alphanumeric())
    {
        return Err(Reason::InvalidChar {
            ch,
            at: offset + at,
        });
    }
    if name.len() > MAX_LABEL_LEN {
        return Err(Reason::SegmentTooLong {
            index,
            len: name.len(),
            max: MAX_LABEL_LEN,
        });
    }
    if starts_with_digit(name) {
        return Err(Reason::LeadingDigit { index });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(s: &str) -> Reason {
        s.parse::<Nsid>().unwrap_err().reason
    }

    #[test]
    fn parts() {
        let nsid: Nsid = "App.Bsky.feed.postV2".parse().unwrap();
        assert_eq!(nsid.authority(), "feed.bsky.app");
        assert_eq!(nsid.name(), "postV2");
        assert_eq!(nsid.as_str(), "App.Bsky.feed.postV2");
    }

    #[test]
    fn reasons() {
        assert_eq!(
            reason("com.example"),
            Reason::TooFewSegments { found: 2, min: 3 }
        );
        assert_eq!(
            reason("1.0.0.127.record"),
            Reason::LeadingDigit { index: 0 }
        );
        assert_eq!(
            reason("com.example.fooBar.2"),
            Reason::LeadingDigit { index: 3 }
        );
        assert_eq!(
            reason("a-0.b-1.c-3"),
            Reason::InvalidChar { ch: '-', at: 9 }
        );
        assert_eq!(
            reason("com.example.foo.*"),
            Reason::InvalidChar { ch: '*', at: 16 }
        );
        assert_eq!(reason("one.two..three"), Reason::EmptySegment { index: 2 });
        assert_eq!(
            reason("com.example-.foo"),
            Reason::HyphenAtEdge { index: 1 }
        );
        assert!(matches!(
            reason(&format!("com.example.{}", "o".repeat(64))),
            Reason::SegmentTooLong {
                index: 2,
                len: 64,
                max: 63
            }
        ));
    }
}
