//! `pds serve`: start-up wiring. Reads the configuration, opens the store, loads or generates
//! the secrets, starts the embedded PLC directory when no `PDS_DID_PLC_URL` is set, and serves
//! the XRPC application until SIGINT or SIGTERM.

use anyhow::Context;
use pds_store::Store;
use plc_directory::{HttpState, PlcDirectory};

use crate::config::{Config, PlcConfig};
use crate::state::{AppState, Plc, Secrets};

/// Runs the server with the configuration from the environment.
pub async fn run() -> anyhow::Result<()> {
    let (config, warnings) = Config::from_env().context("invalid configuration")?;
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .with_context(|| format!("LOG_LEVEL: invalid filter {:?}", config.log_level))?;
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    if !config.dev_mode && (config.jwt_secret.is_none() || config.plc_rotation_key_hex.is_none()) {
        tracing::warn!(
            "PDS_JWT_SECRET or PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX is not set: using secrets \
             generated in the data directory; back it up"
        );
    }
    let state = build_state(config).await?;
    let config = state.config().clone();
    // Background jobs (scheduled deletions, stale uploads, event retention): see `jobs.rs`.
    crate::jobs::spawn(state.clone());
    crate::crawlers::spawn(
        state.store(),
        config.crawlers.clone(),
        config.hostname.clone(),
        crate::crawlers::NOTIFY_THRESHOLD,
    );
    let listener = tokio::net::TcpListener::bind(config.listen_addr())
        .await
        .with_context(|| format!("cannot listen on {}", config.listen_addr()))?;
    announce(&config);
    axum::serve(listener, crate::app(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("server failed")
}

/// Opens the store and secrets, and connects (or starts) the PLC directory.
pub async fn build_state(config: Config) -> anyhow::Result<AppState> {
    let store_config = config.clone();
    let (store, secrets) = tokio::task::spawn_blocking(move || {
        refuse_reference_layout(&store_config.data_dir)?;
        let store = Store::open(&store_config.data_dir).with_context(|| {
            format!(
                "cannot open the store in {}",
                store_config.data_dir.display()
            )
        })?;
        let secrets = Secrets::load_or_generate(&store_config).context("cannot load secrets")?;
        std::fs::create_dir_all(&store_config.blobstore_dir)
            .with_context(|| format!("cannot create {}", store_config.blobstore_dir.display()))?;
        anyhow::Ok((store, secrets))
    })
    .await??;
    let plc = match &config.plc {
        PlcConfig::Embedded { port } => {
            let path = config.data_dir.join("plc.sqlite");
            let directory = tokio::task::spawn_blocking(move || PlcDirectory::open(path))
                .await?
                .context("cannot open the embedded PLC directory")?;
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], *port));
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("embedded PLC directory: cannot listen on {addr}"))?;
            let served = HttpState::new(directory.clone());
            tokio::spawn(async move {
                if let Err(e) = plc_directory::serve(listener, served).await {
                    tracing::error!(error = %e, "the embedded PLC directory stopped");
                }
            });
            Plc::Embedded(directory)
        }
        PlcConfig::Remote { url } => Plc::Remote(
            atp_identity::resolve::PlcClient::new(url, &Default::default())
                .with_context(|| format!("PDS_DID_PLC_URL: {url}"))?,
        ),
    };
    let resolver_config = atp_identity::resolve::ResolverConfig {
        plc_url: config.plc_url(),
        allow_private_addresses: config.dev_mode,
        ..Default::default()
    };
    let resolver = match crate::service::resolution::build_resolver(&config, resolver_config) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(error = %e, "no identity resolver: only local handles will resolve");
            None
        }
    };
    let state = AppState::new(config, store, secrets, plc, resolver);
    state
        .sequencer()
        .start(chrono::Utc::now())
        .await
        .context("starting the firehose sequencer")?;
    let redone = crate::service::blob::finish_pending_promotions(&state)
        .await
        .context("finishing interrupted blob moves")?;
    if redone > 0 {
        tracing::info!(count = redone, "finished interrupted blob moves");
    }
    Ok(state)
}

/// Files and folders at the top of a reference (TypeScript) PDS's `PDS_DATA_DIRECTORY`: an
/// `actors/` folder (one SQLite file per account) beside `account.sqlite` and/or
/// `sequencer.sqlite`.
const REFERENCE_DBS: [&str; 2] = ["account.sqlite", "sequencer.sqlite"];
const REFERENCE_ACTORS_DIR: &str = "actors";

/// The reference-PDS markers found in `dir` (`actors/` and the databases present), or `None`
/// when `dir` is not a reference PDS's data directory (missing or unreadable entries count as
/// absent).
fn reference_layout(dir: &std::path::Path) -> Option<Vec<&'static str>> {
    if !dir.join(REFERENCE_ACTORS_DIR).is_dir() {
        return None;
    }
    let dbs: Vec<&'static str> = REFERENCE_DBS
        .into_iter()
        .filter(|name| dir.join(name).is_file())
        .collect();
    if dbs.is_empty() {
        return None;
    }
    Some(std::iter::once("actors/").chain(dbs).collect())
}

/// Refuses to start on a reference PDS's data directory instead of writing our own files beside
/// its databases (importing one is a separate, explicit step).
fn refuse_reference_layout(dir: &std::path::Path) -> anyhow::Result<()> {
    match reference_layout(dir) {
        None => Ok(()),
        Some(found) => anyhow::bail!(
            "{} looks like the data directory of a reference (TypeScript) PDS (found {}); \
             this server cannot use it in place and will not write beside it. Point \
             PDS_DATA_DIRECTORY at an empty directory (importing a reference PDS is not \
             supported yet)",
            dir.display(),
            found.join(", ")
        ),
    }
}

/// Prints where the server is and how to start using it (the CLI prints; this is the binary's
/// start-up path).
#[allow(clippy::print_stdout)]
fn announce(config: &Config) {
    let url = config.public_url();
    println!("PDS listening on http://{} ({url})", config.listen_addr());
    println!("PLC directory: {}", config.plc_url());
    println!("Data directory: {}", config.data_dir.display());
    if config.dev_mode {
        let domain = config
            .service_handle_domains
            .first()
            .map_or(".test", String::as_str);
        println!("Development mode. Create an account with:");
        println!(
            "  curl -X POST {url}/xrpc/com.atproto.server.createAccount -H 'content-type: application/json' \\\n    -d '{{\"handle\":\"alice{domain}\",\"email\":\"alice@example.com\",\"password\":\"change-me\"}}'"
        );
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_a_reference_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        // Empty, or ours: fine.
        assert_eq!(reference_layout(path), None);
        std::fs::write(path.join(pds_store::DB_FILE_NAME), b"").unwrap();
        std::fs::create_dir(path.join("blobs")).unwrap();
        assert_eq!(reference_layout(path), None);
        // A database without `actors/`, or `actors/` alone: not the reference layout.
        std::fs::write(path.join("account.sqlite"), b"").unwrap();
        assert_eq!(reference_layout(path), None);
        std::fs::remove_file(path.join("account.sqlite")).unwrap();
        std::fs::create_dir(path.join("actors")).unwrap();
        assert_eq!(reference_layout(path), None);
        assert!(refuse_reference_layout(path).is_ok());
        // `actors/` with either database.
        std::fs::write(path.join("sequencer.sqlite"), b"").unwrap();
        assert_eq!(
            reference_layout(path),
            Some(vec!["actors/", "sequencer.sqlite"])
        );
        std::fs::write(path.join("account.sqlite"), b"").unwrap();
        assert_eq!(
            reference_layout(path),
            Some(vec!["actors/", "account.sqlite", "sequencer.sqlite"])
        );
        let message = refuse_reference_layout(path).unwrap_err().to_string();
        assert!(message.contains("reference (TypeScript) PDS"), "{message}");
        assert!(message.contains("account.sqlite"), "{message}");
        // A file named `actors` is not the folder.
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join("actors"), b"").unwrap();
        std::fs::write(other.path().join("account.sqlite"), b"").unwrap();
        assert_eq!(reference_layout(other.path()), None);
    }
}
