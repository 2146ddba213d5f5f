//! The operator commands' connection to a running server's admin API (as `pdsadmin` and
//! `goat` do), configured by the server's own `PDS_*` environment.
//!
//! Without flags, the URL is the server's public URL as `pds serve` derives it from
//! `PDS_HOSTNAME` and `PDS_PORT` (`http://<host>:<port>` in development mode, else
//! `https://<host>`), and the admin password is `PDS_ADMIN_PASSWORD` or, failing that, the one
//! `pds serve` generated into `<PDS_DATA_DIRECTORY>/secrets.json`. `--url` and
//! `--admin-password` override both.
//!
//! Exit codes: 0 success; 1 the server refused (its error name and message are printed);
//! 2 usage, configuration or connection errors.

use std::process::ExitCode;

use anyhow::{Context, anyhow};
use serde::Serialize;
use serde::de::DeserializeOwned;
use xrpc_client::XrpcClient;

use pds::config::Config;
use pds::state::SECRETS_FILE;

/// Where the server is and how to authenticate as its administrator.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ServerArgs {
    /// Base URL of the PDS [default: its public URL from PDS_HOSTNAME and PDS_PORT, as
    /// `pds serve` derives it].
    #[arg(long, global = true, value_name = "URL")]
    url: Option<String>,
    /// Admin password [default: PDS_ADMIN_PASSWORD, else the one in
    /// <PDS_DATA_DIRECTORY>/secrets.json].
    #[arg(long, global = true, value_name = "PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
}

/// Why a command failed: the server refused (exit 1), or anything else (exit 2).
#[derive(Debug)]
pub(crate) enum Failure {
    /// The server answered with an XRPC error.
    Refused(xrpc_client::XrpcError),
    /// A usage, configuration, connection or local error.
    Failed(anyhow::Error),
}

impl From<xrpc_client::XrpcError> for Failure {
    fn from(e: xrpc_client::XrpcError) -> Self {
        match e {
            e @ xrpc_client::XrpcError::Response { .. } => Failure::Refused(e),
            other => Failure::Failed(anyhow::Error::new(other).context("calling the server")),
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Failed(e)
    }
}

/// The exit code of a command's outcome, after printing why it failed.
pub(crate) fn exit_code(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Refused(xrpc_client::XrpcError::Response {
            status,
            error,
            message,
        })) => {
            let name = error.as_deref().unwrap_or("(no error name)");
            match message {
                Some(m) => eprintln!("error: the server refused ({status}): {name}: {m}"),
                None => eprintln!("error: the server refused ({status}): {name}"),
            }
            ExitCode::from(1)
        }
        Err(Failure::Refused(other)) => {
            eprintln!("error: {other}");
            ExitCode::from(1)
        }
        Err(Failure::Failed(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The admin password stored by `pds serve` in the data directory, if any.
fn stored_admin_password(config: &Config) -> anyhow::Result<Option<String>> {
    let path = config.data_dir.join(SECRETS_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let secrets: serde_json::Value =
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))?;
    Ok(secrets["adminPassword"].as_str().map(str::to_owned))
}

/// A connection to the server's XRPC API, as the administrator, with its own runtime.
pub(crate) struct AdminApi {
    client: XrpcClient,
    runtime: tokio::runtime::Runtime,
}

impl AdminApi {
    /// Connects as `args` and the `PDS_*` environment say (see the module docs).
    pub(crate) fn connect(args: &ServerArgs) -> anyhow::Result<AdminApi> {
        let needs_config = args.url.is_none() || args.admin_password.is_none();
        let config = if needs_config {
            let (config, _warnings) =
                Config::from_env().map_err(|e| anyhow!("invalid configuration: {e}"))?;
            Some(config)
        } else {
            None
        };
        let url = match (&args.url, &config) {
            (Some(url), _) => url.clone(),
            (None, Some(config)) => config.public_url(),
            (None, None) => return Err(anyhow!("no server URL: pass --url")),
        };
        let password = match (&args.admin_password, &config) {
            (Some(p), _) => p.clone(),
            (
                None,
                Some(Config {
                    admin_password: Some(p),
                    ..
                }),
            ) => p.clone(),
            (None, Some(config)) => stored_admin_password(config)?.ok_or_else(|| {
                anyhow!(
                    "no admin password: pass --admin-password, set PDS_ADMIN_PASSWORD, or set \
                     PDS_DATA_DIRECTORY to the server's data directory"
                )
            })?,
            (None, None) => return Err(anyhow!("no admin password: pass --admin-password")),
        };
        let client = XrpcClient::new(&url)
            .and_then(|c| c.with_basic("admin", &password))
            .with_context(|| format!("server URL {url:?}"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        Ok(AdminApi { client, runtime })
    }

    fn nsid(nsid: &str) -> Result<atp_syntax::Nsid, Failure> {
        nsid.parse()
            .map_err(|e| Failure::Failed(anyhow!("bad method name {nsid:?}: {e}")))
    }

    /// Calls the query `nsid` with `params`.
    pub(crate) fn query<P, O>(&self, nsid: &str, params: &P) -> Result<O, Failure>
    where
        P: Serialize + ?Sized,
        O: DeserializeOwned,
    {
        let nsid = Self::nsid(nsid)?;
        Ok(self.runtime.block_on(self.client.query(&nsid, params))?)
    }

    /// Calls the procedure `nsid` with the JSON body `input`; an empty answer is JSON `null`.
    pub(crate) fn procedure<I, O>(&self, nsid: &str, input: &I) -> Result<O, Failure>
    where
        I: Serialize + ?Sized,
        O: DeserializeOwned,
    {
        let nsid = Self::nsid(nsid)?;
        Ok(self.runtime.block_on(self.client.procedure(&nsid, input))?)
    }

    /// The DID of an account named by its DID or handle (resolved by the server).
    pub(crate) fn resolve_did(&self, account: &str) -> Result<String, Failure> {
        if account.starts_with("did:") {
            let did: atp_syntax::Did = account
                .parse()
                .map_err(|e| Failure::Failed(anyhow!("invalid DID {account:?}: {e}")))?;
            return Ok(did.to_string());
        }
        let out: serde_json::Value = self.query(
            "com.atproto.identity.resolveHandle",
            &serde_json::json!({ "handle": account }),
        )?;
        out["did"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Failure::Failed(anyhow!("resolveHandle answered without a DID")))
    }
}

/// A random password of 24 letters and digits, as `pdsadmin` generates.
pub(crate) fn random_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(24);
    while out.len() < 24 {
        let mut byte = [0u8; 1];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut byte);
        // 248 = 4 * 62: rejecting the rest keeps every character equally likely.
        if byte[0] < 248 {
            out.push(char::from(ALPHABET[usize::from(byte[0]) % ALPHABET.len()]));
        }
    }
    out
}
