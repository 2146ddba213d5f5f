//! DNS-style labels, shared by handles and the authority part of NSIDs.

use crate::error::Reason;

/// Longest DNS label, in bytes.
pub(crate) const MAX_LABEL_LEN: usize = 63;

/// Checks one label: 1 to 63 ASCII letters, digits or hyphens, not starting or ending with `-`.
///
/// `index` is the label's position (for the error) and `offset` its byte offset in the whole input.
pub(crate) fn check_label(label: &str, index: usize, offset: usize) -> Result<(), Reason> {
    if label.is_empty() {
        return Err(Reason::EmptySegment { index });
    }
    if let Some((at, ch)) = label
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '-'))
    {
        return Err(Reason::InvalidChar {
            ch,
            at: offset + at,
        });
    }
    if label.len() > MAX_LABEL_LEN {
        return Err(Reason::SegmentTooLong {
            index,
            len: label.len(),
            max: MAX_LABEL_LEN,
        });
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(Reason::HyphenAtEdge { index });
    }
    Ok(())
}

/// Whether the label starts with an ASCII digit.
pub(crate) fn starts_with_digit(label: &str) -> bool {
    label.as_bytes().first().is_some_and(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert!(check_label("a", 0, 0).is_ok());
        assert!(check_label("a-b", 0, 0).is_ok());
        assert!(check_label("0aa", 0, 0).is_ok());
        assert_eq!(
            check_label("", 2, 0),
            Err(Reason::EmptySegment { index: 2 })
        );
        assert_eq!(
            check_label("-a", 1, 0),
            Err(Reason::HyphenAtEdge { index: 1 })
        );
        assert_eq!(
            check_label("a-", 1, 0),
            Err(Reason::HyphenAtEdge { index: 1 })
        );
        assert_eq!(
            check_label("a_b", 0, 10),
            Err(Reason::InvalidChar { ch: '_', at: 11 })
        );
        assert!(check_label(&"o".repeat(63), 0, 0).is_ok());
        assert!(matches!(
            check_label(&"o".repeat(64), 0, 0),
            Err(Reason::SegmentTooLong { len: 64, .. })
        ));
    }
}
