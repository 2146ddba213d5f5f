//! `pds plc serve`: run the embedded PLC directory on its own, with the public directory's HTTP
//! API (for tests, and for operators who want a private directory).
//!
//! Prints one line, `plc directory listening on http://<addr>`, once the socket is bound, then
//! serves until SIGINT or SIGTERM and finishes the requests in flight.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use plc_directory::{HttpState, PlcDirectory};

/// Name of the database file inside `--data`.
const DATABASE_FILE: &str = "plc.sqlite";

/// Arguments of `pds plc`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: PlcCommand,
}

#[derive(Debug, Subcommand)]
enum PlcCommand {
    /// Serve a PLC directory over HTTP (the plc.directory API).
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:2582 (port 0 picks a free port).
        #[arg(long)]
        listen: SocketAddr,
        /// Directory holding the database (created if missing).
        #[arg(long)]
        data: PathBuf,
    },
    /// Fetch a DID's audit log from a PLC directory and validate it.
    Audit(super::plc_audit::AuditArgs),
}

/// Runs `pds plc`.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        PlcCommand::Serve { listen, data } => serve(listen, &data),
        PlcCommand::Audit(args) => super::plc_audit::run_audit(args),
    }
}

fn serve(listen: SocketAddr, data: &Path) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(data)
        .with_context(|| format!("creating the data directory {}", data.display()))?;
    let db = data.join(DATABASE_FILE);
    let directory = PlcDirectory::open(&db)
        .with_context(|| format!("opening the PLC database {}", db.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        println!("plc directory listening on http://{addr}");
        plc_directory::serve_with_shutdown(listener, HttpState::new(directory), shutdown_signal())
            .await
            .context("serving HTTP")?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Completes on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
