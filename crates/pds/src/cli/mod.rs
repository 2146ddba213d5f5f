//! Command-line entry: one clap tree, one module per command group.
//!
//! Exit codes that scripts can rely on: 0 success or "valid", 1 "invalid" (the input was read and
//! refused), 2 usage or operational errors (bad flags, unreadable file).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod account;
mod account_token;
mod admin_api;
mod car;
mod identity;
mod invite;
mod key;
mod lexicon;
mod migrate;
mod plc;
mod plc_audit;
mod relay;
mod repo;
mod syntax;

/// AT Protocol Personal Data Server.
#[derive(Debug, Parser)]
#[command(name = "pds", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the PDS server (configured by the reference PDS's PDS_* environment variables).
    Serve,
    /// Check identifier syntax (did, handle, nsid, at-uri, tid, ...).
    Syntax(syntax::Args),
    /// Validate records against Lexicon schemas.
    Lexicon(lexicon::Args),
    /// Generate or inspect signing keys.
    Key(key::Args),
    /// Inspect CAR files.
    Car(car::Args),
    /// did:plc tools: run the embedded PLC directory, audit a DID's log.
    Plc(plc::Args),
    /// Inspect, verify and export repository CAR files.
    Repo(repo::Args),
    /// Resolve handles and DIDs.
    Identity(identity::Args),
    /// Talk to relays: ask them to crawl this PDS.
    Relay(relay::Args),
    /// Administer the accounts of a running server (through its admin API).
    Account(account::Args),
    /// Make invite codes on a running server (through its admin API).
    Invite(invite::Args),
    /// Move an account from one PDS to another (resumable; verifies the result).
    Migrate(migrate::Args),
}

/// Runs the server on a multi-threaded runtime until it is stopped.
fn serve() -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(pds::serve::run())?;
    Ok(ExitCode::SUCCESS)
}

/// Parses the command line and runs the command.
pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve => serve(),
        Command::Syntax(args) => syntax::run(args),
        Command::Lexicon(args) => lexicon::run(args),
        Command::Key(args) => key::run(args),
        Command::Car(args) => car::run(args),
        Command::Plc(args) => plc::run(args),
        Command::Repo(args) => repo::run(args),
        Command::Identity(args) => identity::run(args),
        Command::Relay(args) => relay::run(args),
        Command::Account(args) => account::run(args),
        Command::Invite(args) => invite::run(args),
        Command::Migrate(args) => migrate::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
