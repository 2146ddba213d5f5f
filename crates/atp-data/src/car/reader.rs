//! Streaming CARv1 reader.

use std::io::{BufRead, BufReader, ErrorKind, Read};

use super::varint::VarintDecoder;
use super::{CarError, CarLimits, CarPart, HeaderError};
use crate::cid::{self, Cid, SHA2_256};
use crate::{Value, cbor};

/// Room for the CID in front of a block: a CIDv1 with a 64-byte digest takes at most
/// 3 varints of ≤ 9 bytes + 64 bytes of digest.
const CID_ALLOWANCE: usize = 96;

/// Reads a CARv1 stream block by block, never holding more than one block in memory.
///
/// Every block's bytes are checked against its CID (sha2-256 only; any other hash function is
/// [`CarError::UnsupportedHash`]). Duplicate blocks are returned as they come; callers dedupe.
/// After the first error the reader is finished: the iterator yields `None` from then on.
///
/// The input is buffered internally, so pass a plain `File` or byte slice.
#[derive(Debug)]
pub struct CarReader<R: Read> {
    inner: BufReader<R>,
    roots: Vec<Cid>,
    limits: CarLimits,
    offset: u64,
    done: bool,
}

impl<R: Read> CarReader<R> {
    /// Reads and checks the header with the default [`CarLimits`].
    pub fn new(reader: R) -> Result<Self, CarError> {
        Self::with_limits(reader, CarLimits::default())
    }

    /// Reads and checks the header: `varint(len) ‖ DAG-CBOR {version: 1, roots: [cid...]}`,
    /// strictly decoded. Unknown extra header keys are ignored.
    pub fn with_limits(reader: R, limits: CarLimits) -> Result<Self, CarError> {
        let mut car = CarReader {
            inner: BufReader::with_capacity(64 * 1024, reader),
            roots: Vec::new(),
            limits,
            offset: 0,
            done: false,
        };
        let len = car
            .read_varint(CarPart::HeaderLength)?
            .ok_or(CarError::Truncated {
                offset: 0,
                part: CarPart::HeaderLength,
            })?;
        let max = car.limits.max_header_size;
        let len = usize::try_from(len)
            .ok()
            .filter(|len| *len <= max)
            .ok_or(CarError::HeaderTooLarge { len, max })?;
        let bytes = car.read_exact_part(len, CarPart::Header)?;
        car.roots = parse_header(&bytes)?;
        Ok(car)
    }

    /// The root CIDs named in the header.
    pub fn roots(&self) -> &[Cid] {
        &self.roots
    }

    /// How many bytes of the stream have been consumed so far.
    pub fn bytes_read(&self) -> u64 {
        self.offset
    }

    /// The next block, hash-checked; `Ok(None)` at a clean end of the stream.
    pub fn next_block(&mut self) -> Result<Option<(Cid, Vec<u8>)>, CarError> {
        if self.done {
            return Ok(None);
        }
        let result = self.read_block();
        if !matches!(result, Ok(Some(_))) {
            self.done = true;
        }
        result
    }

    fn read_block(&mut self) -> Result<Option<(Cid, Vec<u8>)>, CarError> {
        let start = self.offset;
        let Some(len) = self.read_varint(CarPart::SectionLength)? else {
            return Ok(None);
        };
        if len == 0 {
            return Err(CarError::EmptySection { offset: start });
        }
        let max = self.limits.max_block_size;
        let len = usize::try_from(len)
            .ok()
            .filter(|len| *len <= max.saturating_add(CID_ALLOWANCE))
            .ok_or(CarError::BlockTooLarge {
                offset: start,
                len,
                max,
            })?;
        let section_start = self.offset;
        let mut section = self.read_exact_part(len, CarPart::Section)?;
        let (cid, cid_len) = cid::read_prefix(&section).map_err(|source| CarError::InvalidCid {
            offset: section_start,
            source,
        })?;
        let cid_len = cid_len.min(len);
        let data_len = len - cid_len;
        if data_len > max {
            return Err(CarError::BlockTooLarge {
                offset: start,
                len: data_len as u64,
                max,
            });
        }
        section.drain(..cid_len);
        verify(&cid, &section)?;
        Ok(Some((cid, section)))
    }

    /// Reads one byte; `None` at end of input.
    fn read_byte(&mut self) -> Result<Option<u8>, CarError> {
        loop {
            match self.inner.fill_buf() {
                Ok([]) => return Ok(None),
                Ok([first, ..]) => {
                    let byte = *first;
                    self.inner.consume(1);
                    self.offset += 1;
                    return Ok(Some(byte));
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(CarError::Io(e)),
            }
        }
    }

    /// Reads a varint; `None` if the input ends cleanly before its first byte.
    fn read_varint(&mut self, part: CarPart) -> Result<Option<u64>, CarError> {
        let start = self.offset;
        let mut decoder = VarintDecoder::default();
        loop {
            let Some(byte) = self.read_byte()? else {
                if decoder.len() == 0 {
                    return Ok(None);
                }
                return Err(CarError::Truncated {
                    offset: self.offset,
                    part,
                });
            };
            match decoder.push(byte) {
                Ok(Some(n)) => return Ok(Some(n)),
                Ok(None) => {}
                Err(reason) => {
                    return Err(CarError::BadVarint {
                        offset: start,
                        reason,
                    });
                }
            }
        }
    }

    /// Reads exactly `len` bytes, growing the buffer only as data actually arrives.
    fn read_exact_part(&mut self, len: usize, part: CarPart) -> Result<Vec<u8>, CarError> {
        let mut buf = Vec::with_capacity(len.min(4 << 20));
        let got = (&mut self.inner)
            .take(len as u64)
            .read_to_end(&mut buf)
            .map_err(CarError::Io)?;
        self.offset += got as u64;
        if got < len {
            return Err(CarError::Truncated {
                offset: self.offset,
                part,
            });
        }
        Ok(buf)
    }
}

impl<R: Read> Iterator for CarReader<R> {
    type Item = Result<(Cid, Vec<u8>), CarError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_block().transpose()
    }
}

/// Checks block bytes against their CID.
fn verify(cid: &Cid, data: &[u8]) -> Result<(), CarError> {
    let code = cid.hash().code();
    if code != SHA2_256 {
        return Err(CarError::UnsupportedHash { cid: *cid, code });
    }
    if !cid::matches(cid, data) {
        return Err(CarError::HashMismatch { cid: *cid });
    }
    Ok(())
}

/// Decodes the header map and returns its roots.
fn parse_header(bytes: &[u8]) -> Result<Vec<Cid>, CarError> {
    let invalid = |reason| CarError::InvalidHeader { reason };
    let header = cbor::from_slice(bytes).map_err(|e| invalid(HeaderError::Decode(e)))?;
    let map = header.as_map().ok_or(invalid(HeaderError::NotAMap))?;
    match map.get("version") {
        Some(Value::Integer(1)) => {}
        Some(Value::Integer(v)) => {
            return Err(invalid(HeaderError::UnsupportedVersion { version: *v }));
        }
        _ => return Err(invalid(HeaderError::MissingVersion)),
    }
    let roots = map
        .get("roots")
        .and_then(Value::as_array)
        .ok_or(invalid(HeaderError::BadRoots))?;
    roots
        .iter()
        .map(|root| {
            root.as_link()
                .copied()
                .ok_or(invalid(HeaderError::BadRoots))
        })
        .collect()
}
