//! Content identifiers as atproto uses them.
//!
//! atproto "blesses" CIDv1 with a sha2-256 multihash and one of two codecs: `dag-cbor` (0x71) for
//! records, MST nodes and commits, `raw` (0x55) for blobs. The [`Cid`] type itself is the general
//! one from the `cid` crate so that foreign CIDs can still be carried and reported; [`check_blessed`]
//! is the gate for what we accept in repositories.

use sha2::{Digest, Sha256};

/// A content identifier (CIDv0 or CIDv1, any multihash up to 64 bytes).
pub type Cid = ::cid::Cid;

/// Multicodec code of DAG-CBOR.
pub const DAG_CBOR: u64 = 0x71;
/// Multicodec code of raw bytes (blobs).
pub const RAW: u64 = 0x55;
/// Multihash code of sha2-256.
pub const SHA2_256: u64 = 0x12;

/// Why a CID was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CidError {
    /// The bytes or string do not form a CID at all.
    #[error("malformed CID: {reason}")]
    Malformed {
        /// What the parser said.
        reason: String,
    },
    /// A well-formed CID that atproto does not allow here.
    #[error("CID {cid} is not CIDv1 sha2-256 with the dag-cbor or raw codec")]
    NotBlessed {
        /// The CID, as a string.
        cid: String,
    },
}

fn sha256_multihash(bytes: &[u8]) -> ::cid::multihash::Multihash<64> {
    let digest = Sha256::digest(bytes);
    ::cid::multihash::Multihash::<64>::wrap(SHA2_256, &digest)
        .expect("a 32-byte digest always fits in a 64-byte multihash")
}

/// The CIDv1 (dag-cbor, sha2-256) of DAG-CBOR bytes.
pub fn cid_for_cbor(bytes: &[u8]) -> Cid {
    Cid::new_v1(DAG_CBOR, sha256_multihash(bytes))
}

/// The CIDv1 (raw, sha2-256) of blob bytes.
pub fn cid_for_raw(bytes: &[u8]) -> Cid {
    Cid::new_v1(RAW, sha256_multihash(bytes))
}

/// Whether `bytes` hash to `cid`, using the CID's own codec and hash (sha2-256 only).
/// A CID with any other hash function never matches.
pub fn matches(cid: &Cid, bytes: &[u8]) -> bool {
    if cid.hash().code() != SHA2_256 {
        return false;
    }
    cid.hash().digest() == &Sha256::digest(bytes)[..]
}

/// Accepts only CIDv1 + sha2-256 (32-byte digest) + dag-cbor or raw.
pub fn check_blessed(cid: &Cid) -> Result<(), CidError> {
    let ok = cid.version() == ::cid::Version::V1
        && cid.hash().code() == SHA2_256
        && cid.hash().size() == 32
        && (cid.codec() == DAG_CBOR || cid.codec() == RAW);
    if ok {
        Ok(())
    } else {
        Err(CidError::NotBlessed {
            cid: cid.to_string(),
        })
    }
}

/// Reads one binary CID from the front of `bytes` and returns it with the number of bytes it used.
///
/// Only the canonical encoding is accepted: the varint decoder underneath (`unsigned-varint` 0.8, via
/// `cid`/`multihash`) silently drops overflow bits of over-long varints, so the bytes consumed must be
/// exactly what the CID re-encodes to. Otherwise two byte strings would name the same CID.
pub fn read_prefix(bytes: &[u8]) -> Result<(Cid, usize), CidError> {
    let mut cursor = std::io::Cursor::new(bytes);
    let cid = Cid::read_bytes(&mut cursor).map_err(|e| CidError::Malformed {
        reason: e.to_string(),
    })?;
    let used = usize::try_from(cursor.position()).unwrap_or(usize::MAX);
    let canonical = cid.to_bytes();
    if bytes.get(..used) != Some(canonical.as_slice()) {
        return Err(CidError::Malformed {
            reason: "non-canonical CID encoding (over-long varint)".to_owned(),
        });
    }
    Ok((cid, used))
}

/// Parses binary CID bytes (no multibase prefix, no leading 0x00), requiring that every byte is used
/// and that the encoding is canonical.
pub fn from_bytes(bytes: &[u8]) -> Result<Cid, CidError> {
    let (cid, used) = read_prefix(bytes)?;
    if used != bytes.len() {
        return Err(CidError::Malformed {
            reason: "trailing bytes after CID".to_owned(),
        });
    }
    Ok(cid)
}

/// Parses a CID string. Only CIDv1 in base32 lower case (`b...`) is accepted: that is the only
/// form atproto writes.
pub fn parse(s: &str) -> Result<Cid, CidError> {
    if !s.starts_with('b') {
        return Err(CidError::Malformed {
            reason: "expected a base32 (b...) CIDv1 string".to_owned(),
        });
    }
    let cid = Cid::try_from(s).map_err(|e| CidError::Malformed {
        reason: e.to_string(),
    })?;
    if cid.version() != ::cid::Version::V1 {
        return Err(CidError::Malformed {
            reason: "CIDv0 is not allowed".to_owned(),
        });
    }
    // The `cid` crate also accepts `.../ipfs/<cid>` paths, non-canonical base32 (trailing bits)
    // and trailing bytes after the multihash; only the canonical string is a CID here.
    if cid.to_string() != s {
        return Err(CidError::Malformed {
            reason: "not the canonical base32 form of the CID".to_owned(),
        });
    }
    Ok(cid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_and_blob_prefixes() {
        assert!(cid_for_cbor(b"\xa0").to_string().starts_with("bafyrei"));
        assert!(cid_for_raw(b"hello").to_string().starts_with("bafkrei"));
    }

    #[test]
    fn parse_round_trip() {
        let c = cid_for_cbor(b"\xa0");
        assert_eq!(parse(&c.to_string()).unwrap(), c);
        assert_eq!(from_bytes(&c.to_bytes()).unwrap(), c);
        assert!(from_bytes(&[c.to_bytes(), vec![0]].concat()).is_err());
        assert!(matches(&c, b"\xa0"));
        assert_eq!(
            read_prefix(&[c.to_bytes(), vec![7]].concat()).unwrap().1,
            36
        );
        let s = c.to_string();
        assert!(parse(&format!("b/ipfs/{s}")).is_err());
        assert!(parse(&s.to_uppercase()).is_err());
        assert!(parse(&format!("{s}a")).is_err());
        assert!(!matches(&c, b"\xa1"));
    }

    /// Regression (found by the `cbor_decode` fuzz target): `unsigned-varint` 0.8 drops the overflow bits
    /// of a 10-byte varint, so an over-long codec or multihash-code varint used to decode to a
    /// different, shorter CID and be accepted.
    #[test]
    fn over_long_varints_are_refused() {
        let codec = [
            0x01, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02, 0x12, 0x00,
        ];
        assert!(from_bytes(&codec).is_err());
        let mut padded = vec![
            0x01, 0xf1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02, 0x12, 0x20,
        ];
        padded.extend_from_slice(&[0u8; 32]);
        assert!(read_prefix(&padded).is_err());
        // A merely non-minimal (but in-range) varint is refused too.
        let mut two_byte = vec![0x01, 0xf1, 0x00, 0x12, 0x20];
        two_byte.extend_from_slice(&[0u8; 32]);
        assert!(from_bytes(&two_byte).is_err());
    }
}
