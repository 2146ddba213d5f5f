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
    let resolver = match atp_identity::resolve::IdentityResolver::new(resolver_config) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(error = %e, "no identity resolver: only local handles will resolve");
            None
        }
    };
    let state = AppState::new(config, store, secrets, plc, resolver);
    let redone = crate::service::blob::finish_pending_promotions(&state)
        .await
        .context("finishing interrupted blob moves")?;
    if redone > 0 {
        tracing::info!(count = redone, "finished interrupted blob moves");
    }
    Ok(state)
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
