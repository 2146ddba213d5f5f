//! `pds repo`: inspect, verify and export repository CAR files.
//!
//! Every command stages the CAR into an in-memory block store (checking each block's hash), then
//! walks the repository from its commit with `atp_repo`'s checked, batched traversal.
//! Exit codes: 0 valid, 1 invalid (the exact reason goes to stderr: `hash mismatch`,
//! `missing block`, `bad signature`, `high-S signature`, `bad MST order`, ...), 2 the file could
//! not be read or the arguments are wrong.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use atp_crypto::PublicKey;
use atp_repo::{
    MemoryBlockStore, RepoSummary, SignatureStatus, StagedCar, Traversal, VerifyError, Visit,
    read_commit, stage_car, verify_repo,
};
use atp_syntax::Tid;

/// Arguments of `pds repo`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Verify a repository CAR and print its DID, rev, commit and data CIDs, and records per collection.
    Inspect {
        /// The CAR file.
        file: PathBuf,
        /// Check the commit signature against this key (`did:key:...`).
        #[arg(long)]
        key: Option<String>,
    },
    /// Verify a repository CAR: block hashes, commit, signature (with --key), MST structure, records.
    Verify {
        /// The CAR file.
        file: PathBuf,
        /// Check the commit signature against this key (`did:key:...`).
        #[arg(long)]
        key: Option<String>,
    },
    /// Print every record as one JSON line: {"uri", "cid", "value"} (atproto JSON), in key order.
    ExportJson {
        /// The CAR file.
        file: PathBuf,
    },
}

/// Runs `pds repo`.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .context("cannot start the async runtime")?;
    match args.command {
        Command::Inspect { file, key } => {
            let key = parse_key(key.as_deref())?;
            runtime.block_on(inspect(&file, key.as_ref()))
        }
        Command::Verify { file, key } => {
            let key = parse_key(key.as_deref())?;
            runtime.block_on(verify(&file, key.as_ref()))
        }
        Command::ExportJson { file } => runtime.block_on(export_json(&file)),
    }
}

fn parse_key(key: Option<&str>) -> anyhow::Result<Option<PublicKey>> {
    key.map(|k| PublicKey::from_did_key(k).with_context(|| format!("invalid --key {k:?}")))
        .transpose()
}

/// Maps a verification failure to the exit code: I/O is operational (an error, exit 2), anything
/// else is a verdict on the file (reason on stderr, exit 1).
fn refuse(path: &Path, err: VerifyError) -> anyhow::Result<ExitCode> {
    match err {
        VerifyError::Io(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        VerifyError::Store(e) => Err(e).context("block store failed"),
        other => {
            eprintln!("invalid: {other}");
            Ok(ExitCode::from(1))
        }
    }
}

/// Opens and stages the CAR; returns the store, what was read and the root.
async fn stage(path: &Path) -> anyhow::Result<Result<(MemoryBlockStore, StagedCar), VerifyError>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let store = MemoryBlockStore::new();
    // Blocks are tagged with a revision; for a scratch store any TID will do.
    Ok(stage_car(file, &store, &Tid::from_u64(0))
        .await
        .map(|staged| (store, staged)))
}

async fn inspect(path: &Path, key: Option<&PublicKey>) -> anyhow::Result<ExitCode> {
    let (store, staged) = match stage(path).await? {
        Ok(ok) => ok,
        Err(e) => return refuse(path, e),
    };
    let root = match staged.root() {
        Ok(root) => root,
        Err(e) => return refuse(path, e),
    };
    let mut out = std::io::stdout().lock();
    match read_commit(&store, &root).await {
        Ok(commit) => {
            writeln!(out, "did: {}", commit.did())?;
            writeln!(out, "version: {}", commit.commit.version)?;
            match commit.rev() {
                Some(rev) => writeln!(out, "rev: {rev}")?,
                None => writeln!(out, "rev: none (version 2 commit)")?,
            }
            writeln!(out, "commit: {root}")?;
            writeln!(out, "data: {}", commit.data())?;
        }
        Err(e) => return refuse(path, e),
    }
    writeln!(out, "blocks: {}", staged.blocks)?;
    writeln!(out, "car bytes: {}", staged.bytes)?;
    out.flush()?;
    match verify_repo(&store, &root, key).await {
        Ok(summary) => {
            print_summary(&mut out, &summary, key)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => refuse(path, e),
    }
}

fn print_summary(
    out: &mut impl Write,
    summary: &RepoSummary,
    key: Option<&PublicKey>,
) -> std::io::Result<()> {
    match (summary.signature, key) {
        (SignatureStatus::Valid, Some(key)) => {
            writeln!(out, "signature: valid ({})", key.did_key())?
        }
        _ => writeln!(out, "signature: not checked (no --key)")?,
    }
    writeln!(out, "mst nodes: {}", summary.mst_nodes)?;
    writeln!(out, "mst height: {}", summary.mst_height)?;
    writeln!(out, "records: {}", summary.records)?;
    for (collection, count) in &summary.collections {
        writeln!(out, "  {collection}: {count}")?;
    }
    Ok(())
}

async fn verify(path: &Path, key: Option<&PublicKey>) -> anyhow::Result<ExitCode> {
    let (store, staged) = match stage(path).await? {
        Ok(ok) => ok,
        Err(e) => return refuse(path, e),
    };
    let result = match staged.root() {
        Ok(root) => verify_repo(&store, &root, key).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(summary) => {
            let rev = summary
                .rev
                .as_ref()
                .map_or_else(|| "none".to_owned(), Tid::to_string);
            let signature = match summary.signature {
                SignatureStatus::Valid => "signature valid",
                SignatureStatus::NotChecked => "signature not checked",
            };
            println!(
                "valid: {} rev {rev} commit {}: {} records, {signature}",
                summary.did, summary.commit, summary.records
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => refuse(path, e),
    }
}

async fn export_json(path: &Path) -> anyhow::Result<ExitCode> {
    let (store, staged) = match stage(path).await? {
        Ok(ok) => ok,
        Err(e) => return refuse(path, e),
    };
    let commit = match staged.root() {
        Ok(root) => read_commit(&store, &root).await,
        Err(e) => Err(e),
    };
    let commit = match commit {
        Ok(commit) => commit,
        Err(e) => return refuse(path, e),
    };
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut walk = Traversal::new(&store, *commit.data()).skip_repeated_records(false);
    loop {
        let (key, cid, bytes) = match walk.next().await {
            Ok(None) => break,
            Ok(Some(Visit::Node { .. })) => continue,
            Ok(Some(Visit::Record { key, cid, bytes })) => (key, cid, bytes.unwrap_or_default()),
            Err(e) => {
                out.flush()?;
                return refuse(path, e);
            }
        };
        let value = match atp_data::cbor::from_slice(&bytes) {
            Ok(value) => value,
            Err(e) => {
                out.flush()?;
                eprintln!("invalid: bad record {key} ({cid}): {e}");
                return Ok(ExitCode::from(1));
            }
        };
        // Written by hand to keep the fields in this order (serde_json sorts object keys).
        let uri = serde_json::Value::from(format!("at://{}/{key}", commit.did()));
        let value = atp_data::json::to_json(&value);
        writeln!(out, r#"{{"uri":{uri},"cid":"{cid}","value":{value}}}"#)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
