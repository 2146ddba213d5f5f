//! `pds plc audit <did>`: fetch a DID's whole audit log from a PLC directory and validate it
//! (every signature, the `prev` chain, the recovery rules, the `nullified` flags), saying where
//! it breaks.
//!
//! Prints `valid: …` with the resulting state, or `invalid: entry <index> …: <reason>`; `--json`
//! prints one object instead. Exit codes: 0 valid, 1 invalid (a malformed or failing entry, or an
//! answer that is not an audit log), 2 network failure, unknown DID, or usage. A `--plc-url`
//! given here is trusted, loopback included.

use std::process::ExitCode;

use anyhow::Context;
use atp_identity::plc::{AuditedLog, LogEntry, PlcState, validate_audit_log};
use atp_identity::resolve::{DEFAULT_PLC_URL, Limits, PlcClient, PlcError};
use atp_syntax::Did;
use serde_json::json;

/// Arguments of `pds plc audit`.
#[derive(Debug, clap::Args)]
pub(crate) struct AuditArgs {
    /// The did:plc whose log to audit.
    did: String,
    /// PLC directory to fetch the log from (trusted: http and loopback allowed).
    #[arg(long, default_value = DEFAULT_PLC_URL)]
    plc_url: String,
    /// Print one JSON object instead of lines.
    #[arg(long)]
    json: bool,
}

/// Runs `pds plc audit`.
pub(crate) fn run_audit(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let did: Did = args
        .did
        .parse()
        .with_context(|| format!("{:?} is not a DID", args.did))?;
    anyhow::ensure!(did.method() == "plc", "{did} is not a did:plc");
    let client = PlcClient::new(&args.plc_url, &Limits::default())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let fetched = runtime.block_on(client.audit_log(&did));
    let entries = match fetched {
        Ok(entries) => entries,
        Err(PlcError::InvalidEntry { index, reason }) => {
            report_invalid(
                &did,
                args.json,
                Some(index),
                &format!("malformed entry: {reason}"),
            );
            return Ok(ExitCode::from(1));
        }
        Err(e @ PlcError::InvalidResponse { .. }) => {
            report_invalid(&did, args.json, None, &e.to_string());
            return Ok(ExitCode::from(1));
        }
        Err(e) => {
            eprintln!(
                "error: fetching the audit log of {did} from {}: {e}",
                client.base_url()
            );
            return Ok(ExitCode::from(2));
        }
    };
    match validate_audit_log(&did, &entries) {
        Ok(audited) => {
            report_valid(&did, &entries, &audited, args.json);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let at = entries.get(e.index).map(|entry| {
                format!(
                    " (cid {}, createdAt {})",
                    entry.cid,
                    entry.created_at.to_rfc3339()
                )
            });
            let reason = format!("{}{}", e.failure, at.unwrap_or_default());
            report_invalid(&did, args.json, Some(e.index), &reason);
            Ok(ExitCode::from(1))
        }
    }
}

fn report_invalid(did: &Did, json: bool, index: Option<usize>, reason: &str) {
    if json {
        let object = json!({
            "did": did.as_str(),
            "valid": false,
            "error": {"index": index, "reason": reason},
        });
        println!("{object}");
    } else {
        match index {
            Some(index) => println!("invalid: {did}: entry {index}: {reason}"),
            None => println!("invalid: {did}: {reason}"),
        }
    }
}

fn report_valid(did: &Did, entries: &[LogEntry], audited: &AuditedLog, json: bool) {
    let nullified = entries.iter().filter(|e| e.nullified).count();
    let data = audited.state.data();
    if json {
        let object = json!({
            "did": did.as_str(),
            "valid": true,
            "operations": entries.len(),
            "nullified": nullified,
            "head": audited.head.to_string(),
            "state": match audited.state {
                PlcState::Active(_) => "active",
                PlcState::Tombstoned => "tombstoned",
            },
            "data": data,
        });
        println!("{object}");
        return;
    }
    println!(
        "valid: {did}: {} operations ({nullified} nullified), head {}",
        entries.len(),
        audited.head
    );
    match data {
        None => println!("state: tombstoned"),
        Some(data) => {
            println!("state: active");
            let aka = data.also_known_as.first().map_or("(none)", String::as_str);
            println!("also known as: {aka}");
            println!("pds: {}", data.pds_endpoint().unwrap_or("(none)"));
            println!("signing key: {}", data.atproto_key().unwrap_or("(none)"));
            println!("rotation keys: {}", data.rotation_keys.join(", "));
        }
    }
}
