//! `pds invite create`: make invite codes through a running server's admin API (see
//! `admin_api.rs` for the connection and the exit codes). Prints one code per line.

use std::process::ExitCode;

use anyhow::anyhow;
use clap::Subcommand;
use serde_json::{Value, json};

use super::admin_api::{AdminApi, Failure, ServerArgs, exit_code};

/// Arguments of `pds invite`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: InviteCommand,
}

#[derive(Debug, Subcommand)]
enum InviteCommand {
    /// Create invite codes and print them, one per line.
    Create {
        /// How many accounts may use each code.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        uses: u32,
        /// How many codes to create (for each account given with --for).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        count: u32,
        /// DID of an account to issue the codes to (repeatable) [default: the administrator].
        #[arg(long = "for", value_name = "DID")]
        for_accounts: Vec<String>,
    },
}

/// Runs `pds invite`.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let api = AdminApi::connect(&args.server)?;
    let result = match args.command {
        InviteCommand::Create {
            uses,
            count,
            for_accounts,
        } => create(&api, uses, count, for_accounts),
    };
    Ok(exit_code(result))
}

fn create(api: &AdminApi, uses: u32, count: u32, for_accounts: Vec<String>) -> Result<(), Failure> {
    let mut input = json!({"codeCount": count, "useCount": uses});
    if !for_accounts.is_empty() {
        input["forAccounts"] = json!(for_accounts);
    }
    let out: Value = api.procedure("com.atproto.server.createInviteCodes", &input)?;
    let codes: Vec<&str> = out["codes"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|account| account["codes"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    if codes.is_empty() {
        return Err(Failure::Failed(anyhow!("the server created no codes")));
    }
    for code in codes {
        println!("{code}");
    }
    Ok(())
}
