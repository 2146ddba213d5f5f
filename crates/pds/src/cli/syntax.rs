//! `pds syntax check <kind> <value>`: is this string a valid DID, handle, NSID, AT-URI, ...?
//!
//! Valid: prints `valid`, exit 0. Invalid: prints the reason on stderr (`invalid DID: must not end
//! with ':'`), exit 1. The value is checked exactly as given, with no trimming, by the same
//! `atp-syntax` parsers the server uses.
//!
//! The hidden `--stdin` flag checks every line of stdin instead (split on `\n`, nothing trimmed)
//! and prints one verdict per line on stdout (`valid` or `invalid: <reason>`); it exits 1 if any
//! line is invalid. It exists for bulk checks such as the conformance test over the vector files.

use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::Context;
use atp_syntax::{
    AtIdentifier, AtUri, CidString, Datetime, Did, Handle, Language, Nsid, RecordKey, SyntaxError,
    Tid, Uri,
};
use clap::{Subcommand, ValueEnum};

/// Arguments of `pds syntax`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: SyntaxCommand,
}

#[derive(Debug, Subcommand)]
enum SyntaxCommand {
    /// Check one value: prints "valid" (exit 0), or the reason on stderr (exit 1).
    Check(CheckArgs),
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// The format to check against.
    kind: Format,
    /// The value, exactly as given (not trimmed). A leading '-' is fine.
    #[arg(allow_hyphen_values = true, required_unless_present = "stdin")]
    value: Option<String>,
    /// Check each line of stdin instead; print one verdict per line.
    #[arg(long, hide = true, conflicts_with = "value")]
    stdin: bool,
}

/// The Lexicon string formats `pds syntax check` knows.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// A DID: did:<method>:<identifier>, at most 2048 bytes.
    Did,
    /// A handle: a DNS name such as alice.bsky.social, at most 253 bytes.
    Handle,
    /// A Lexicon NSID such as app.bsky.feed.post, at most 317 bytes.
    Nsid,
    /// A strict AT-URI: at://<did-or-handle>[/<nsid>[/<record-key>]], at most 8 KiB.
    #[value(alias = "aturi")]
    AtUri,
    /// A DID or a handle.
    AtIdentifier,
    /// A record key: 1-512 of A-Za-z0-9 and ._:~- (not "." or "..").
    #[value(alias = "rkey")]
    RecordKey,
    /// A TID: 13 characters of base32-sortable.
    Tid,
    /// A Lexicon datetime: RFC 3339 with upper-case T and Z and a required timezone.
    Datetime,
    /// A BCP-47 language tag such as pt-BR.
    Language,
    /// A CID string (its shape only; not decoded).
    Cid,
    /// A URI with a scheme, no whitespace, at most 8 KiB.
    Uri,
}

impl Format {
    fn check(self, value: &str) -> Result<(), SyntaxError> {
        match self {
            Format::Did => value.parse::<Did>().map(drop),
            Format::Handle => value.parse::<Handle>().map(drop),
            Format::Nsid => value.parse::<Nsid>().map(drop),
            Format::AtUri => value.parse::<AtUri>().map(drop),
            Format::AtIdentifier => value.parse::<AtIdentifier>().map(drop),
            Format::RecordKey => value.parse::<RecordKey>().map(drop),
            Format::Tid => value.parse::<Tid>().map(drop),
            Format::Datetime => value.parse::<Datetime>().map(drop),
            Format::Language => value.parse::<Language>().map(drop),
            Format::Cid => value.parse::<CidString>().map(drop),
            Format::Uri => value.parse::<Uri>().map(drop),
        }
    }
}

/// Runs `pds syntax`.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        SyntaxCommand::Check(check) => match check.value {
            Some(value) if !check.stdin => Ok(check_one(check.kind, &value)),
            _ => check_lines(check.kind),
        },
    }
}

fn check_one(format: Format, value: &str) -> ExitCode {
    match format.check(value) {
        Ok(()) => {
            println!("valid");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("{err}");
            ExitCode::FAILURE
        }
    }
}

/// `--stdin`: one verdict per input line; a final `\n` ends the last line rather than starting
/// an empty one.
fn check_lines(format: Format) -> anyhow::Result<ExitCode> {
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .context("reading stdin")?;
    let input = String::from_utf8(input).context("stdin is not UTF-8")?;
    let body = input.strip_suffix('\n').unwrap_or(&input);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut all_valid = true;
    if !input.is_empty() {
        for line in body.split('\n') {
            match format.check(line) {
                Ok(()) => writeln!(out, "valid"),
                Err(err) => {
                    all_valid = false;
                    writeln!(out, "invalid: {}", err.reason)
                }
            }
            .context("writing stdout")?;
        }
    }
    out.flush().context("writing stdout")?;
    Ok(if all_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
