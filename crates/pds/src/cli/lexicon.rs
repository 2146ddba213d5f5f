//! `pds lexicon validate --lexicons <dir> --type <nsid> <record.json>`: checks a record against
//! Lexicon schemas, with the same validator the server runs on every write.
//!
//! Valid: prints `valid`, exit 0. Invalid: prints `invalid: <path>: <reason>` (for example
//! `invalid: Record/text: must not be longer than 300 graphemes`), exit 1; data that is not
//! atproto data at all (floats, bad `$link`) is invalid too. Usage and I/O problems (unreadable
//! schemas or file, text that is not JSON, a type the schemas do not define): exit 2.
//!
//! `--type` is normally a record type (`app.bsky.feed.post`); any other definition
//! (`app.bsky.embed.images#image`) checks the file as a value of that type, rooted at `Value`.
//! The record path `-` reads stdin.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use atp_lexicon::{Catalog, LexError};
use atp_syntax::Nsid;
use clap::Subcommand;

/// Arguments of `pds lexicon`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: LexiconCommand,
}

#[derive(Debug, Subcommand)]
enum LexiconCommand {
    /// Validate a record (JSON file, or - for stdin) against the schemas in a directory.
    Validate(ValidateArgs),
}

#[derive(Debug, clap::Args)]
struct ValidateArgs {
    /// Directory of Lexicon JSON files (searched recursively).
    #[arg(long, value_name = "DIR")]
    lexicons: PathBuf,
    /// The record type (an NSID), or any definition (nsid#name).
    #[arg(long = "type", value_name = "NSID")]
    type_name: String,
    /// The record, as atproto JSON; - reads stdin.
    record: PathBuf,
}

/// Runs `pds lexicon`.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        LexiconCommand::Validate(args) => validate(&args),
    }
}

fn validate(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let catalog = Catalog::from_dir(&args.lexicons)
        .with_context(|| format!("loading the schemas in {}", args.lexicons.display()))?;
    if !catalog.contains_def(&args.type_name) {
        bail!(
            "{} is not defined by the schemas in {}",
            args.type_name,
            args.lexicons.display()
        );
    }
    let json = read_json(&args.record)?;
    let record_type = args
        .type_name
        .parse::<Nsid>()
        .ok()
        .filter(|nsid| catalog.record_key(nsid).is_some());
    let root = if record_type.is_some() {
        "Record"
    } else {
        "Value"
    };
    let value = match atp_data::json::from_json(&json) {
        Ok(value) => value,
        Err(e) => {
            let path = format!("{root}{}", unescape_pointer(&e.path));
            return Ok(invalid(&path, &format!("not atproto data: {}", e.kind)));
        }
    };
    let verdict = match record_type {
        Some(nsid) => catalog.validate_record(&nsid, &value).map(drop),
        None => catalog.validate(&args.type_name, &value, root),
    };
    Ok(match verdict {
        Ok(()) => {
            println!("valid");
            ExitCode::SUCCESS
        }
        Err(LexError { path, kind }) => invalid(&path, &kind.to_string()),
    })
}

/// A JSON pointer (`/a~1b/0`) in the validator's path style (`/a/b/0`).
fn unescape_pointer(pointer: &str) -> String {
    pointer.replace("~1", "/").replace("~0", "~")
}

fn invalid(path: &str, reason: &str) -> ExitCode {
    println!("invalid: {path}: {reason}");
    ExitCode::FAILURE
}

fn read_json(path: &PathBuf) -> anyhow::Result<serde_json::Value> {
    let text = if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading stdin")?;
        text
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}
