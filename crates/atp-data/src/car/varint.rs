//! Unsigned LEB128 varints as CAR framing uses them (multiformats `unsigned-varint`):
//! at most 9 bytes (63 bits), and only the minimal encoding is accepted.

/// The longest varint accepted (9 × 7 = 63 bits).
pub(crate) const MAX_LEN: usize = 9;

/// Why a varint was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VarintError {
    /// More than nine bytes, or a ninth byte with the continuation bit set.
    #[error("varint longer than 9 bytes")]
    TooLong,
    /// A trailing zero byte: the same number has a shorter encoding.
    #[error("varint is not minimally encoded")]
    NonMinimal,
}

/// Accumulates a varint one byte at a time.
#[derive(Debug, Default)]
pub(crate) struct VarintDecoder {
    value: u64,
    len: usize,
}

impl VarintDecoder {
    /// Bytes consumed so far.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Feeds one byte: `Ok(Some(n))` when the varint is complete, `Ok(None)` when more bytes follow.
    pub(crate) fn push(&mut self, byte: u8) -> Result<Option<u64>, VarintError> {
        if self.len >= MAX_LEN {
            return Err(VarintError::TooLong);
        }
        self.value |= u64::from(byte & 0x7f) << (7 * self.len);
        self.len += 1;
        if byte & 0x80 != 0 {
            if self.len == MAX_LEN {
                return Err(VarintError::TooLong);
            }
            return Ok(None);
        }
        if byte == 0 && self.len > 1 {
            return Err(VarintError::NonMinimal);
        }
        Ok(Some(self.value))
    }
}

/// Writes `n` as a minimal varint into `buf` and returns the used prefix.
/// `n` must be below 2^63 (anything a `usize` length on a 64-bit machine can reach in practice);
/// larger values would need a tenth byte, which readers refuse.
pub(crate) fn encode(mut n: u64, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = 0;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            buf[i] = byte;
            return &buf[..=i];
        }
        buf[i] = byte | 0x80;
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> Result<Option<u64>, VarintError> {
        let mut d = VarintDecoder::default();
        for b in bytes {
            if let Some(n) = d.push(*b)? {
                return Ok(Some(n));
            }
        }
        Ok(None)
    }

    #[test]
    fn round_trip() {
        for n in [
            0,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u64::from(u32::MAX),
            (1 << 63) - 1,
        ] {
            let mut buf = [0; 10];
            let bytes = encode(n, &mut buf).to_vec();
            assert!(bytes.len() <= MAX_LEN);
            assert_eq!(decode(&bytes), Ok(Some(n)), "{n}");
        }
    }

    #[test]
    fn refusals() {
        assert_eq!(decode(&[0x80, 0x00]), Err(VarintError::NonMinimal));
        assert_eq!(decode(&[0xff; 9]), Err(VarintError::TooLong));
        assert_eq!(decode(&[0x80]), Ok(None));
    }
}
