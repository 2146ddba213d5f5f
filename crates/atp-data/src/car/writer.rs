//! Streaming CARv1 writer.

use std::io::Write;

use super::CarError;
use super::varint;
use crate::Cid;
use crate::cbor::Encoder;

/// Writes a CARv1 stream: the header on construction, then one section per block.
///
/// The writer does not hash: callers pass CIDs they computed for the bytes. It writes straight to
/// `W`, so wrap files in a `BufWriter`.
#[derive(Debug)]
pub struct CarWriter<W: Write> {
    inner: W,
    written: u64,
    scratch: Vec<u8>,
}

impl<W: Write> CarWriter<W> {
    /// Writes the header `varint(len) ‖ DAG-CBOR {roots: [...], version: 1}`.
    pub fn new(inner: W, roots: &[Cid]) -> Result<Self, CarError> {
        let mut header = Vec::with_capacity(16 + roots.len() * 40);
        let mut enc = Encoder::new(&mut header);
        // DAG-CBOR key order: "roots" (5 bytes) before "version" (7 bytes).
        enc.map(2).str("roots").array(roots.len());
        for root in roots {
            enc.link(root);
        }
        enc.str("version").int(1);
        let mut writer = CarWriter {
            inner,
            written: 0,
            scratch: Vec::with_capacity(128),
        };
        let mut buf = [0; 10];
        let prefix = varint::encode(header.len() as u64, &mut buf);
        writer.inner.write_all(prefix)?;
        writer.inner.write_all(&header)?;
        writer.written = (prefix.len() + header.len()) as u64;
        Ok(writer)
    }

    /// Writes one block section: `varint(len(cid) + len(data)) ‖ cid bytes ‖ data`.
    pub fn write_block(&mut self, cid: &Cid, data: &[u8]) -> Result<(), CarError> {
        self.scratch.clear();
        let section_len = (cid.encoded_len() + data.len()) as u64;
        let mut buf = [0; 10];
        self.scratch
            .extend_from_slice(varint::encode(section_len, &mut buf));
        cid.write_bytes(&mut self.scratch)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        self.inner.write_all(&self.scratch)?;
        self.inner.write_all(data)?;
        self.written += (self.scratch.len() + data.len()) as u64;
        Ok(())
    }

    /// Writes one block section whose content the caller holds contiguously: `varint(len) ‖
    /// section`, where `section` is the CID's bytes followed by the block (as
    /// [`CarWriter::write_block`] would write them). Nothing is checked.
    pub fn write_section(&mut self, section: &[u8]) -> Result<(), CarError> {
        let mut buf = [0; 10];
        let prefix = varint::encode(section.len() as u64, &mut buf);
        self.inner.write_all(prefix)?;
        self.inner.write_all(section)?;
        self.written += (prefix.len() + section.len()) as u64;
        Ok(())
    }

    /// Total bytes written so far, header included.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Flushes and returns the underlying writer.
    pub fn finish(mut self) -> Result<W, CarError> {
        self.inner.flush()?;
        Ok(self.inner)
    }
}
