//! The Lexicon `cid` string format: the shape of a CIDv1 string, not its contents.
//!
//! Full CID decoding lives with the data model (`atp-data`); this is the cheap check used for
//! string fields, as indigo's `syntax.CID` does.

use crate::error::{Kind, Reason, SyntaxError};

/// Shortest CID string, in bytes.
pub const MIN_CID_LEN: usize = 8;
/// Longest CID string, in bytes.
pub const MAX_CID_LEN: usize = 256;

string_newtype!(
    /// A string shaped like a CIDv1, such as `bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm`.
    ///
    /// 8 to 256 ASCII letters, digits, `+` and `=` (multibase prefix included), not starting with
    /// `Qm` (CIDv0, which atproto does not use). The multibase, codec and hash are not decoded.
    CidString,
    check
);

fn check(s: &str) -> Result<(), SyntaxError> {
    check_reason(s).map_err(|reason| SyntaxError::new(Kind::Cid, reason))
}

fn check_reason(s: &str) -> Result<(), Reason> {
    if let Some((at, ch)) = s
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '+' || c == '='))
    {
        return Err(Reason::InvalidChar { ch, at });
    }
    if s.len() < MIN_CID_LEN {
        return Err(Reason::TooShort {
            len: s.len(),
            min: MIN_CID_LEN,
        });
    }
    if s.len() > MAX_CID_LEN {
        return Err(Reason::TooLong {
            len: s.len(),
            max: MAX_CID_LEN,
        });
    }
    if s.starts_with("Qm") {
        return Err(Reason::CidV0);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(s: &str) -> Reason {
        s.parse::<CidString>().unwrap_err().reason
    }

    #[test]
    fn reasons() {
        assert!(
            "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"
                .parse::<CidString>()
                .is_ok()
        );
        assert_eq!(reason("noop"), Reason::TooShort { len: 4, min: 8 });
        assert_eq!(reason(" bafy1234"), Reason::InvalidChar { ch: ' ', at: 0 });
        assert_eq!(
            reason("QmbWqxBEKC3P8tqsKc98xmWNzrzDtRLMiMPL8wBuTGsMnR"),
            Reason::CidV0
        );
        assert_eq!(
            reason(&"b".repeat(257)),
            Reason::TooLong { len: 257, max: 256 }
        );
    }
}
