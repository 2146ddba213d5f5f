//! `pds car`: inspect CAR files.
//!
//! `pds car inspect <file>` streams the file through [`atp_data::car::CarReader`] (every block's
//! hash is checked) and prints a summary. Exit codes: 0 the file is a valid CAR, 1 it was read but
//! refused (the reason, naming the CID for hash errors, goes to stderr), 2 it could not be read.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use atp_data::Cid;
use atp_data::car::{CarError, CarReader};
use atp_data::cid::{DAG_CBOR, RAW};

/// Arguments of `pds car`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Check every block hash and print roots, block count and sizes, and counts per codec.
    Inspect {
        /// The CAR file to read.
        file: PathBuf,
    },
}

/// Runs `pds car`.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Inspect { file } => inspect(&file),
    }
}

/// What `inspect` learns from one pass over the file.
#[derive(Debug, Default)]
struct Summary {
    roots: Vec<Cid>,
    blocks: u64,
    duplicates: u64,
    min: Option<usize>,
    max: usize,
    block_bytes: u64,
    file_bytes: u64,
    codecs: BTreeMap<u64, u64>,
}

impl Summary {
    fn add(&mut self, cid: &Cid, len: usize, seen: &mut HashSet<Cid>) {
        self.blocks += 1;
        if !seen.insert(*cid) {
            self.duplicates += 1;
        }
        self.min = Some(self.min.map_or(len, |m| m.min(len)));
        self.max = self.max.max(len);
        self.block_bytes += len as u64;
        *self.codecs.entry(cid.codec()).or_default() += 1;
    }

    fn print(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(out, "roots: {}", self.roots.len())?;
        for root in &self.roots {
            writeln!(out, "  {root}")?;
        }
        writeln!(out, "blocks: {}", self.blocks)?;
        writeln!(out, "duplicate blocks: {}", self.duplicates)?;
        writeln!(out, "total bytes: {}", self.file_bytes)?;
        writeln!(
            out,
            "block bytes: min {} max {} total {}",
            self.min.unwrap_or(0),
            self.max,
            self.block_bytes
        )?;
        for (codec, count) in &self.codecs {
            writeln!(out, "codec {}: {count}", codec_name(*codec))?;
        }
        Ok(())
    }
}

fn codec_name(codec: u64) -> String {
    match codec {
        DAG_CBOR => "dag-cbor".to_owned(),
        RAW => "raw".to_owned(),
        0x70 => "dag-pb".to_owned(),
        0x0129 => "dag-json".to_owned(),
        other => format!("{other:#x}"),
    }
}

fn inspect(path: &Path) -> anyhow::Result<ExitCode> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut summary = Summary::default();
    let mut seen = HashSet::new();
    let result = (|| {
        let mut reader = CarReader::new(file)?;
        summary.roots = reader.roots().to_vec();
        while let Some((cid, data)) = reader.next_block()? {
            summary.add(&cid, data.len(), &mut seen);
        }
        summary.file_bytes = reader.bytes_read();
        Ok::<(), CarError>(())
    })();
    match result {
        Ok(()) => {
            summary
                .print(&mut std::io::stdout().lock())
                .context("cannot write to stdout")?;
            Ok(ExitCode::SUCCESS)
        }
        // The file could not be read at all: operational, like a missing file.
        Err(CarError::Io(e)) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        Err(e) => {
            eprintln!(
                "invalid CAR {} (after {} good blocks): {e}",
                path.display(),
                summary.blocks
            );
            Ok(ExitCode::from(1))
        }
    }
}
