//! base64url (RFC 4648 §5) without padding, in the two strengths atproto needs.
//!
//! - [`decode_strict`]: the canonical form only. No `=`, no line breaks or other whitespace, and the
//!   unused low bits of the last character must be zero. PLC operation signatures are checked this
//!   way: otherwise one signature has several spellings, and so one operation several CIDs.
//! - [`decode_lenient`]: what JWT libraries accept in the wild (trailing `=` stripped, non-zero
//!   trailing bits ignored). Used for service-auth tokens, whose bytes are signed as text anyway.

use std::sync::LazyLock;

use data_encoding::{BASE64URL_NOPAD, DecodeError, Encoding};

static LENIENT: LazyLock<Encoding> = LazyLock::new(|| {
    let mut spec = BASE64URL_NOPAD.specification();
    spec.check_trailing_bits = false;
    spec.encoding()
        .expect("base64url without trailing-bit checks is a valid specification")
});

/// Encodes without padding.
pub(crate) fn encode(bytes: &[u8]) -> String {
    BASE64URL_NOPAD.encode(bytes)
}

/// Decodes the canonical unpadded form only.
pub(crate) fn decode_strict(s: &str) -> Result<Vec<u8>, DecodeError> {
    BASE64URL_NOPAD.decode(s.as_bytes())
}

/// Decodes unpadded or padded base64url, ignoring non-zero trailing bits.
pub(crate) fn decode_lenient(s: &str) -> Result<Vec<u8>, DecodeError> {
    LENIENT.decode(s.trim_end_matches('=').as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_refuses_non_canonical_spellings() {
        let canonical = encode(&[0xff, 0xee]);
        assert_eq!(canonical, "_-4");
        assert_eq!(decode_strict(&canonical).unwrap(), vec![0xff, 0xee]);
        assert!(decode_strict("_-4=").is_err(), "padding");
        assert!(decode_strict("_-5").is_err(), "non-zero trailing bits");
        assert!(decode_strict("_-4\n").is_err(), "newline");
        assert!(decode_strict("_+4").is_err(), "standard alphabet");
        assert_eq!(decode_lenient("_-5").unwrap(), vec![0xff, 0xee]);
        assert_eq!(decode_lenient("_-4=").unwrap(), vec![0xff, 0xee]);
    }
}
