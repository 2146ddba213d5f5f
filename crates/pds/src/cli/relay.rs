//! `pds relay request-crawl [host...]`: ask relays to crawl this PDS
//! (`com.atproto.sync.requestCrawl {hostname}`).
//!
//! Hosts default to `PDS_CRAWLERS`; the hostname is `--hostname` or `PDS_HOSTNAME`. Exit codes:
//! 0 every host accepted, 1 a host refused (answered with an error), 2 a configuration or
//! network error.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;

/// Arguments of `pds relay`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: RelayCommand,
}

#[derive(Debug, Subcommand)]
enum RelayCommand {
    /// Ask relays to crawl this PDS.
    RequestCrawl {
        /// Relay base URLs (default: PDS_CRAWLERS).
        hosts: Vec<String>,
        /// This PDS's hostname (default: PDS_HOSTNAME).
        #[arg(long)]
        hostname: Option<String>,
    },
}

/// Runs `pds relay`.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        RelayCommand::RequestCrawl { hosts, hostname } => request_crawl(hosts, hostname),
    }
}

fn request_crawl(hosts: Vec<String>, hostname: Option<String>) -> anyhow::Result<ExitCode> {
    let hostname = match hostname.or_else(|| std::env::var("PDS_HOSTNAME").ok()) {
        Some(h) if !h.trim().is_empty() => h.trim().to_owned(),
        _ => bail!("no hostname: pass --hostname or set PDS_HOSTNAME"),
    };
    let hosts = if hosts.is_empty() {
        std::env::var("PDS_CRAWLERS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .collect()
    } else {
        hosts
    };
    if hosts.is_empty() {
        bail!("no relay hosts: pass them or set PDS_CRAWLERS");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let results = runtime.block_on(pds::crawlers::notify_all(&hosts, &hostname));
    let (mut refused, mut failed) = (false, false);
    for (host, result) in hosts.iter().zip(results) {
        match result {
            Ok(()) => println!("{host}: ok"),
            Err(e) => {
                if e.status().is_some() {
                    refused = true;
                } else {
                    failed = true;
                }
                eprintln!("{host}: {e}");
            }
        }
    }
    Ok(if failed {
        ExitCode::from(2)
    } else if refused {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
