//! MST keys: the `collection/rkey` rules, key heights and prefix lengths.

use atp_syntax::{Nsid, RecordKey};
use sha2::{Digest, Sha256};

use super::MstError;

/// Longest allowed MST key, in bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// The layer (height) of a key: the number of leading zero bits of SHA-256(key), divided by two
/// and rounded down (fanout 4). Works on any bytes, including keys that are not valid repo paths.
pub fn height_for_key(key: &[u8]) -> u8 {
    let digest = Sha256::digest(key);
    let mut zeros: u32 = 0;
    for byte in digest.iter() {
        zeros += byte.leading_zeros();
        if *byte != 0 {
            break;
        }
    }
    // At most 256 zero bits, so the height is at most 128 and fits.
    (zeros / 2) as u8
}

/// Length of the common byte prefix of `a` and `b`.
pub fn common_prefix_len(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// The MST key of a record: `collection/rkey`.
pub fn format_key(collection: &Nsid, rkey: &RecordKey) -> String {
    format!("{}/{}", collection.as_str(), rkey.as_str())
}

/// Splits and parses a repo path `collection/rkey` (a valid NSID, one `/`, a valid record key,
/// at most [`MAX_KEY_LEN`] bytes).
pub fn parse_key(key: &str) -> Result<(Nsid, RecordKey), MstError> {
    let invalid = |reason: String| MstError::InvalidKey {
        key: key.to_owned(),
        reason,
    };
    if key.len() > MAX_KEY_LEN {
        return Err(invalid(format!("longer than {MAX_KEY_LEN} bytes")));
    }
    let (collection, rkey) = key
        .split_once('/')
        .ok_or_else(|| invalid("expected collection/rkey".to_owned()))?;
    let collection: Nsid = collection
        .parse()
        .map_err(|e| invalid(format!("collection: {e}")))?;
    let rkey: RecordKey = rkey
        .parse()
        .map_err(|e| invalid(format!("record key: {e}")))?;
    Ok((collection, rkey))
}

/// Checks a key written through this crate: see [`parse_key`].
pub fn validate_key(key: &str) -> Result<(), MstError> {
    parse_key(key).map(|_| ())
}

/// The looser shape check applied to keys read from stored or received nodes: at most
/// [`MAX_KEY_LEN`] bytes, exactly one `/` with non-empty sides, only `A-Za-z0-9 . - _ : ~`
/// otherwise. (Old repositories may hold collection names that are not valid NSIDs today.)
pub(crate) fn is_plausible_key(key: &[u8]) -> bool {
    if key.len() > MAX_KEY_LEN {
        return false;
    }
    let mut parts = key.split(|b| *b == b'/');
    let (Some(collection), Some(rkey), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let ok = |s: &[u8]| {
        !s.is_empty()
            && s.iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'~'))
    };
    ok(collection) && ok(rkey)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heights() {
        assert_eq!(height_for_key(b""), 0);
        assert_eq!(height_for_key(b"blue"), 1);
        assert_eq!(height_for_key(b"app.bsky.feed.post/9adeb165882c"), 8);
    }

    #[test]
    fn key_rules() {
        assert!(validate_key("app.bsky.feed.post/3jqfcqzm3fo2j").is_ok());
        for bad in [
            "",
            "app.bsky.feed.post",
            "app.bsky.feed.post/",
            "/3jqfcqzm3fo2j",
            "app.bsky.feed.post/a/b",
            "app.bsky.feed.post/..",
            "not an nsid/abc",
        ] {
            assert!(validate_key(bad).is_err(), "{bad:?}");
        }
        let long = format!("app.bsky.feed.post/{}", "a".repeat(1100));
        assert!(validate_key(&long).is_err());
        assert!(is_plausible_key(b"coll/rkey"));
        assert!(!is_plausible_key(b"coll/rk/ey"));
        assert!(!is_plausible_key(b"coll/r key"));
    }
}
