//! Decentralized identifiers, generic syntax (<https://atproto.com/specs/did>).

use crate::error::{Kind, Reason, SyntaxError};

/// Longest DID, in bytes.
pub const MAX_DID_LEN: usize = 2048;

string_newtype!(
    /// A syntactically valid DID, such as `did:plc:ewvi7nxzyoun6zhxrhs64oiz`.
    ///
    /// `did:`, a method of lower-case ASCII letters, `:`, then an identifier of ASCII letters, digits
    /// and `._:%-` that does not end in `:` or `%`; at most 2048 bytes. Case-sensitive. Percent
    /// escapes are not decoded or checked, and the method is not restricted to the blessed
    /// `plc`/`web` (that is resolution policy, not syntax).
    Did,
    check
);

impl Did {
    /// The method, between `did:` and the next `:` (`"plc"`, `"web"`, ...).
    pub fn method(&self) -> &str {
        self.0
            .get(4..)
            .and_then(|rest| rest.split(':').next())
            .unwrap_or_default()
    }

    /// The method-specific identifier, everything after `did:<method>:`.
    pub fn identifier(&self) -> &str {
        self.0
            .get(4..)
            .and_then(|rest| rest.split_once(':'))
            .map(|(_, id)| id)
            .unwrap_or_default()
    }
}

fn check(s: &str) -> Result<(), SyntaxError> {
    check_reason(s).map_err(|reason| SyntaxError::new(Kind::Did, reason))
}

fn check_reason(s: &str) -> Result<(), Reason> {
    if s.is_empty() {
        return Err(Reason::Empty);
    }
    if s.len() > MAX_DID_LEN {
        return Err(Reason::TooLong {
            len: s.len(),
            max: MAX_DID_LEN,
        });
    }
    let Some(rest) = s.strip_prefix("did:") else {
        return Err(Reason::Expected {
            what: "\"did:\"",
            at: 0,
        });
    };
    let method_len = rest.bytes().take_while(u8::is_ascii_lowercase).count();
    if method_len == 0 {
        return Err(unexpected(s, 4, "lower-case method name"));
    }
    let colon = 4 + method_len;
    if s.as_bytes().get(colon) != Some(&b':') {
        return Err(unexpected(s, colon, "':' after the method"));
    }
    let id_start = colon + 1;
    let id = rest.get(method_len + 1..).unwrap_or_default();
    if id.is_empty() {
        return Err(Reason::Expected {
            what: "identifier",
            at: id_start,
        });
    }
    if let Some((at, ch)) = id.char_indices().find(|&(_, c)| !is_id_char(c)) {
        return Err(Reason::InvalidChar {
            ch,
            at: id_start + at,
        });
    }
    match id.chars().last() {
        Some(ch @ (':' | '%')) => Err(Reason::InvalidEnd { ch }),
        _ => Ok(()),
    }
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '%' | '-')
}

/// The reason for finding something other than `what` at byte `at`.
fn unexpected(s: &str, at: usize, what: &'static str) -> Reason {
    match s.get(at..).and_then(|r| r.chars().next()) {
        Some(ch) => Reason::InvalidChar { ch, at },
        None => Reason::Expected { what, at },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(s: &str) -> Reason {
        s.parse::<Did>().unwrap_err().reason
    }

    #[test]
    fn parts() {
        let did: Did = "did:web:localhost%3A1234".parse().unwrap();
        assert_eq!(did.method(), "web");
        assert_eq!(did.identifier(), "localhost%3A1234");
        let did: Did = "did:method::::val".parse().unwrap();
        assert_eq!(did.method(), "method");
        assert_eq!(did.identifier(), ":::val");
    }

    #[test]
    fn reasons() {
        assert_eq!(reason(""), Reason::Empty);
        assert_eq!(
            reason("DID:method:val"),
            Reason::Expected {
                what: "\"did:\"",
                at: 0
            }
        );
        assert_eq!(
            reason("did:METHOD:val"),
            Reason::InvalidChar { ch: 'M', at: 4 }
        );
        assert_eq!(
            reason("did:m123:val"),
            Reason::InvalidChar { ch: '1', at: 5 }
        );
        assert_eq!(
            reason("did:method"),
            Reason::Expected {
                what: "':' after the method",
                at: 10
            }
        );
        assert_eq!(
            reason("did:method:"),
            Reason::Expected {
                what: "identifier",
                at: 11
            }
        );
        assert_eq!(
            reason("did:method:val/two"),
            Reason::InvalidChar { ch: '/', at: 14 }
        );
        assert_eq!(reason("did:method:val:"), Reason::InvalidEnd { ch: ':' });
        assert_eq!(reason("did:method:val%"), Reason::InvalidEnd { ch: '%' });
    }

    #[test]
    fn length_limit_is_2048() {
        let ok = format!("did:plc:{}", "a".repeat(2040));
        assert!(ok.parse::<Did>().is_ok());
        assert!(matches!(
            reason(&format!("{ok}a")),
            Reason::TooLong {
                len: 2049,
                max: 2048
            }
        ));
    }
}
