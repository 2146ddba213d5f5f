//! `pds account token <handle|did> <purpose>`: prints an account's live email code, read from
//! the data directory's database opened read-only (works while the server runs). For servers
//! with no SMTP configured, where the codes are only logged.
//!
//! The data directory is `--data-dir`, else `PDS_DATA_DIRECTORY` (as `pds serve` reads it).
//! Exit codes: 0 the code is printed, 1 no such account or no live code (none, or expired),
//! 2 errors (bad arguments, no database).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use pds::service::email_tokens;
use pds_store::EmailTokenPurpose;

/// Arguments of `pds account token`.
#[derive(Debug, clap::Args)]
pub(crate) struct TokenArgs {
    /// The account: a handle or a DID.
    identifier: String,
    /// What the code is for: confirm_email, update_email, reset_password, delete_account,
    /// plc_operation or auth_factor (a sign-in code of the email sign-in factor).
    #[arg(value_parser = parse_purpose)]
    purpose: EmailTokenPurpose,
    /// The data directory (default: PDS_DATA_DIRECTORY, else ./data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

fn parse_purpose(s: &str) -> Result<EmailTokenPurpose, String> {
    s.parse()
}

/// Runs `pds account token`.
pub(crate) fn run(args: TokenArgs) -> anyhow::Result<ExitCode> {
    let data_dir = match args.data_dir {
        Some(dir) => dir,
        None => {
            pds::Config::from_env()
                .context("invalid configuration")?
                .0
                .data_dir
        }
    };
    let db = data_dir.join(pds_store::DB_FILE_NAME);
    let identifier = args.identifier.trim();
    let found = pds_store::read_email_token(&db, identifier, args.purpose)
        .with_context(|| format!("reading {}", db.display()))?;
    let purpose = args.purpose.as_str();
    match found {
        None => {
            eprintln!("no account {identifier:?} in {}", db.display());
            Ok(ExitCode::from(1))
        }
        Some((did, None)) => {
            eprintln!("{did} has no {purpose} code");
            Ok(ExitCode::from(1))
        }
        Some((did, Some(token))) => {
            if email_tokens::is_expired(token.requested_at, chrono::Utc::now()) {
                eprintln!(
                    "{did}'s {purpose} code has expired (requested {}); request a new one",
                    token.requested_at.to_rfc3339()
                );
                return Ok(ExitCode::from(1));
            }
            println!("{}", token.token);
            Ok(ExitCode::SUCCESS)
        }
    }
}
