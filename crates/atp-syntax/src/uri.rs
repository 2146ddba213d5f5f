//! The Lexicon `uri` string format: any URI with a scheme.
//!
//! Deliberately loose, like the reference implementations: an RFC 3986 scheme
//! (`ALPHA *(ALPHA / DIGIT / "+" / "-" / ".")`), `:`, then at least one character, with no
//! whitespace or control characters anywhere, at most 8 KiB. The rest is not parsed, so `at://`,
//! `did:`, `dns:` and `https:` URIs all pass.

use crate::error::{Kind, Reason, SyntaxError};

/// Longest URI, in bytes.
pub const MAX_URI_LEN: usize = 8192;

string_newtype!(
    /// A URI with a scheme, such as `https://example.com/path?q=1#frag`, kept exactly as written.
    Uri,
    check
);

impl Uri {
    /// The scheme, before the first `:` (as written; schemes compare case-insensitively).
    pub fn scheme(&self) -> &str {
        self.0.split(':').next().unwrap_or_default()
    }
}

fn check(s: &str) -> Result<(), SyntaxError> {
    check_reason(s).map_err(|reason| SyntaxError::new(Kind::Uri, reason))
}

fn check_reason(s: &str) -> Result<(), Reason> {
    if s.is_empty() {
        return Err(Reason::Empty);
    }
    if s.len() > MAX_URI_LEN {
        return Err(Reason::TooLong {
            len: s.len(),
            max: MAX_URI_LEN,
        });
    }
    if let Some((at, ch)) = s
        .char_indices()
        .find(|&(_, c)| c.is_whitespace() || c.is_control())
    {
        return Err(Reason::InvalidChar { ch, at });
    }
    if !s.as_bytes().first().is_some_and(u8::is_ascii_alphabetic) {
        return Err(Reason::Expected {
            what: "a scheme starting with a letter",
            at: 0,
        });
    }
    let scheme_len = s
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        .count();
    match s.get(scheme_len..).and_then(|rest| rest.chars().next()) {
        Some(':') => {}
        Some(ch) => return Err(Reason::InvalidChar { ch, at: scheme_len }),
        None => {
            return Err(Reason::Expected {
                what: "':' after the scheme",
                at: scheme_len,
            });
        }
    }
    if s.len() == scheme_len + 1 {
        return Err(Reason::Expected {
            what: "something after the scheme",
            at: s.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(s: &str) -> Reason {
        s.parse::<Uri>().unwrap_err().reason
    }

    #[test]
    fn scheme() {
        let uri: Uri = "microsoft.windows.camera:thing".parse().unwrap();
        assert_eq!(uri.scheme(), "microsoft.windows.camera");
        assert!("file:///etc/hosts".parse::<Uri>().is_ok());
        assert!("https://example.com/ünïcode".parse::<Uri>().is_ok());
    }

    #[test]
    fn reasons() {
        assert_eq!(reason(""), Reason::Empty);
        assert_eq!(
            reason("http:"),
            Reason::Expected {
                what: "something after the scheme",
                at: 5
            }
        );
        assert_eq!(
            reason("example.com"),
            Reason::Expected {
                what: "':' after the scheme",
                at: 11
            }
        );
        assert_eq!(
            reason("12345"),
            Reason::Expected {
                what: "a scheme starting with a letter",
                at: 0
            }
        );
        assert_eq!(reason("a b:c"), Reason::InvalidChar { ch: ' ', at: 1 });
        assert_eq!(reason("ht_tp://x"), Reason::InvalidChar { ch: '_', at: 2 });
        assert_eq!(
            reason("https://x/\u{7f}"),
            Reason::InvalidChar {
                ch: '\u{7f}',
                at: 10
            }
        );
        let long = format!("https://example.com/{}", "x".repeat(8200));
        assert!(matches!(reason(&long), Reason::TooLong { .. }));
    }
}
