//! CARv1, the container atproto uses for repository exports, imports and firehose block sets.
//!
//! Layout: `varint(len) ‖ DAG-CBOR {roots: [cid...], version: 1}`, then repeated sections
//! `varint(len) ‖ cid bytes ‖ block bytes`, where `len` covers the CID and the block.
//! Spec: <https://ipld.io/specs/transport/car/carv1/>, <https://atproto.com/specs/repository#car-file-serialization>.
//!
//! Tricky bits:
//! - Inside CAR framing a CID is raw bytes with no `0x00` prefix (unlike tag 42 in DAG-CBOR).
//! - Varints are multiformats `unsigned-varint`: at most 9 bytes and minimally encoded.
//! - A CAR may repeat a block; [`CarReader`] returns every occurrence.
//! - Firehose CARs are partial: roots and links may point at blocks that are not there.

mod reader;
mod varint;
mod writer;

pub use reader::CarReader;
pub use varint::VarintError;
pub use writer::CarWriter;

use crate::Cid;
use crate::cbor::DecodeError;
use crate::cid::CidError;

/// Size limits a [`CarReader`] enforces before reading anything into memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CarLimits {
    /// Largest block (excluding its CID) accepted.
    pub max_block_size: usize,
    /// Largest header accepted.
    pub max_header_size: usize,
}

impl CarLimits {
    /// Default block limit: 2 MiB plus slack for framing and encoding overhead.
    pub const DEFAULT_MAX_BLOCK_SIZE: usize = 2 * 1024 * 1024 + 64 * 1024;
    /// Default header limit: 64 KiB (a header with one root is about 60 bytes).
    pub const DEFAULT_MAX_HEADER_SIZE: usize = 64 * 1024;
}

impl Default for CarLimits {
    fn default() -> Self {
        CarLimits {
            max_block_size: Self::DEFAULT_MAX_BLOCK_SIZE,
            max_header_size: Self::DEFAULT_MAX_HEADER_SIZE,
        }
    }
}

/// Which part of the stream an error refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CarPart {
    /// The varint in front of the header.
    HeaderLength,
    /// The header itself.
    Header,
    /// The varint in front of a block section.
    SectionLength,
    /// A block section (CID and data).
    Section,
}

impl std::fmt::Display for CarPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CarPart::HeaderLength => "header length",
            CarPart::Header => "header",
            CarPart::SectionLength => "section length",
            CarPart::Section => "block section",
        })
    }
}

/// What is wrong with a CAR header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Not strict DAG-CBOR.
    #[error("not strict DAG-CBOR: {0}")]
    Decode(DecodeError),
    /// Not a map.
    #[error("header is not a map")]
    NotAMap,
    /// No integer `version` field.
    #[error("header has no integer version")]
    MissingVersion,
    /// A version other than 1 (CARv2 starts with a `{version: 2}` pragma).
    #[error("unsupported CAR version {version}")]
    UnsupportedVersion {
        /// The version found.
        version: i64,
    },
    /// `roots` missing, not an array, or holding something other than links.
    #[error("header roots must be an array of CID links")]
    BadRoots,
}

/// Why a CAR stream was refused. Offsets count bytes from the start of the stream.
#[derive(Debug, thiserror::Error)]
pub enum CarError {
    /// The underlying reader or writer failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The stream ended in the middle of something.
    #[error("truncated CAR: input ends inside the {part} at offset {offset}")]
    Truncated {
        /// Where the input ended.
        offset: u64,
        /// What was being read.
        part: CarPart,
    },
    /// A length varint that is too long or not minimal.
    #[error("bad varint at offset {offset}: {reason}")]
    BadVarint {
        /// Where the varint starts.
        offset: u64,
        /// What is wrong with it.
        reason: VarintError,
    },
    /// The header length is above [`CarLimits::max_header_size`].
    #[error("CAR header of {len} bytes exceeds the limit of {max}")]
    HeaderTooLarge {
        /// Declared length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// The header is malformed.
    #[error("invalid CAR header: {reason}")]
    InvalidHeader {
        /// What is wrong.
        reason: HeaderError,
    },
    /// A block is above [`CarLimits::max_block_size`].
    #[error("block at offset {offset} of {len} bytes exceeds the limit of {max}")]
    BlockTooLarge {
        /// Where the section starts.
        offset: u64,
        /// Declared length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// A section of length zero.
    #[error("empty section at offset {offset}")]
    EmptySection {
        /// Where the section starts.
        offset: u64,
    },
    /// The section does not start with a parsable CID.
    #[error("invalid CID in section at offset {offset}: {source}")]
    InvalidCid {
        /// Where the section's CID starts.
        offset: u64,
        /// What the CID parser said.
        source: CidError,
    },
    /// The block's CID uses a hash function this crate cannot check.
    #[error("block {cid} uses unsupported hash function {code:#x}")]
    UnsupportedHash {
        /// The block's CID.
        cid: Cid,
        /// The multihash code.
        code: u64,
    },
    /// The block's bytes do not hash to its CID.
    #[error("hash mismatch: block bytes do not match CID {cid}")]
    HashMismatch {
        /// The CID the block claimed.
        cid: Cid,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cid::{cid_for_cbor, cid_for_raw};

    type Blocks = Vec<(Cid, Vec<u8>)>;

    fn sample() -> (Vec<Cid>, Blocks, Vec<u8>) {
        let blocks: Blocks = vec![
            (cid_for_cbor(b"\xa0"), b"\xa0".to_vec()),
            (cid_for_raw(b"hello"), b"hello".to_vec()),
            (cid_for_raw(b"hello"), b"hello".to_vec()),
        ];
        let roots = vec![blocks[0].0];
        let mut w = CarWriter::new(Vec::new(), &roots).unwrap();
        for (cid, data) in &blocks {
            w.write_block(cid, data).unwrap();
        }
        let n = w.bytes_written();
        let bytes = w.finish().unwrap();
        assert_eq!(n, bytes.len() as u64);
        (roots, blocks, bytes)
    }

    #[test]
    fn round_trip_keeps_duplicates() {
        let (roots, blocks, bytes) = sample();
        let reader = CarReader::new(bytes.as_slice()).unwrap();
        assert_eq!(reader.roots(), roots.as_slice());
        let read: Vec<_> = reader.collect::<Result<_, _>>().unwrap();
        assert_eq!(read, blocks);
    }

    #[test]
    fn every_prefix_is_an_error_or_a_shorter_car() {
        let (roots, _, bytes) = sample();
        for len in 0..bytes.len() {
            let prefix = &bytes[..len];
            let result = CarReader::new(prefix).and_then(|r| r.collect::<Result<Vec<_>, _>>());
            // Only a cut exactly at a section boundary is itself a (shorter) valid CAR.
            if let Ok(blocks) = result {
                let mut w = CarWriter::new(Vec::new(), &roots).unwrap();
                for (cid, data) in &blocks {
                    w.write_block(cid, data).unwrap();
                }
                assert_eq!(w.finish().unwrap(), prefix, "prefix {len} accepted");
            }
        }
    }

    #[test]
    fn hash_mismatch_names_the_cid() {
        let (_, blocks, mut bytes) = sample();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let err = CarReader::new(bytes.as_slice())
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap_err();
        assert!(matches!(err, CarError::HashMismatch { cid } if cid == blocks[2].0));
    }

    #[test]
    fn limits_and_bad_varints() {
        let (_, _, bytes) = sample();
        let tiny = CarLimits {
            max_block_size: 1,
            max_header_size: 8,
        };
        assert!(matches!(
            CarReader::with_limits(bytes.as_slice(), tiny),
            Err(CarError::HeaderTooLarge { .. })
        ));
        let huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert!(matches!(
            CarReader::new(&huge[..]),
            Err(CarError::BadVarint {
                offset: 0,
                reason: VarintError::TooLong
            })
        ));
        assert!(matches!(
            CarReader::new(&[0x80, 0x00][..]),
            Err(CarError::BadVarint {
                reason: VarintError::NonMinimal,
                ..
            })
        ));
        let limits = CarLimits {
            max_block_size: 2,
            ..CarLimits::default()
        };
        let err = CarReader::with_limits(bytes.as_slice(), limits)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap_err();
        assert!(matches!(err, CarError::BlockTooLarge { .. }), "{err}");
    }

    #[test]
    fn header_rules() {
        for (header, expected) in [
            (
                vec![0xa1, 0x67, b'v', b'e', b'r', b's', b'i', b'o', b'n', 0x02],
                "unsupported CAR version 2",
            ),
            (vec![0x80], "header is not a map"),
            (vec![0xa0], "header has no integer version"),
        ] {
            let car = [vec![header.len() as u8], header].concat();
            let err = CarReader::new(car.as_slice()).unwrap_err();
            assert!(err.to_string().contains(expected), "{err}");
        }
    }
}
