//! [`AppState`]: the few services the handlers share, and the secrets they need.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use atp_crypto::{Curve, Keypair};
use atp_identity::plc::SignedOp;
use atp_identity::resolve::IdentityResolver;
use atp_syntax::Did;
use pds_store::Store;
use plc_directory::PlcDirectory;
use zeroize::Zeroizing;

use crate::config::Config;
use crate::sequencer::Sequencer;
use crate::service::writer::RepoWriter;

/// Name of the secrets file in the data directory (mode 0600).
pub const SECRETS_FILE: &str = "secrets.json";

/// The server's secrets: from the configuration, or generated once and kept in the data
/// directory.
pub struct Secrets {
    /// HS256 key of session tokens.
    pub jwt_secret: Zeroizing<String>,
    /// The admin password.
    pub admin_password: Zeroizing<String>,
    /// The PLC rotation key (k256).
    pub plc_rotation_key: Keypair,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(..)")
    }
}

/// Why the secrets could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct SecretsError {
    /// The secrets file.
    pub path: PathBuf,
    /// What went wrong.
    pub reason: String,
}

/// Writes `bytes` to a new or truncated file readable by the owner only.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(bytes)?;
    file.sync_all()
}

/// A random secret of 32 bytes, hex-encoded.
pub fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    hex::encode(bytes)
}

impl Secrets {
    /// The configured secrets, completing the missing ones from `<data>/secrets.json`, generated
    /// and written there (0600) on first use. Blocking.
    pub fn load_or_generate(config: &Config) -> Result<Secrets, SecretsError> {
        let path = config.data_dir.join(SECRETS_FILE);
        let err = |reason: String| SecretsError {
            path: path.clone(),
            reason,
        };
        let mut stored: serde_json::Map<String, serde_json::Value> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| err(e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::Map::new(),
            Err(e) => return Err(err(e.to_string())),
        };
        let mut changed = false;
        let mut take = |key: &str, configured: &Option<String>, make: &dyn Fn() -> String| {
            if let Some(v) = configured {
                return Zeroizing::new(v.clone());
            }
            if let Some(v) = stored.get(key).and_then(|v| v.as_str()) {
                return Zeroizing::new(v.to_owned());
            }
            let v = make();
            stored.insert(key.to_owned(), serde_json::Value::from(v.clone()));
            changed = true;
            Zeroizing::new(v)
        };
        let jwt_secret = take("jwtSecret", &config.jwt_secret, &random_hex);
        let admin_password = take("adminPassword", &config.admin_password, &random_hex);
        let rotation_hex = take(
            "plcRotationKeyK256PrivateKeyHex",
            &config.plc_rotation_key_hex,
            &|| Keypair::generate(Curve::K256).private_hex().to_string(),
        );
        let plc_rotation_key = Keypair::from_private_hex(Curve::K256, &rotation_hex)
            .map_err(|e| err(format!("bad PLC rotation key: {e}")))?;
        if changed {
            std::fs::create_dir_all(&config.data_dir).map_err(|e| err(e.to_string()))?;
            let body = serde_json::to_vec_pretty(&stored).map_err(|e| err(e.to_string()))?;
            write_private_file(&path, &body).map_err(|e| err(e.to_string()))?;
        }
        Ok(Secrets {
            jwt_secret,
            admin_password,
            plc_rotation_key,
        })
    }
}

/// The PLC directory the server registers DIDs with.
#[derive(Debug, Clone)]
pub enum Plc {
    /// The embedded directory, called in-process.
    Embedded(PlcDirectory),
    /// A directory reached over HTTP.
    Remote(atp_identity::resolve::PlcClient),
}

/// Why a PLC submission failed.
#[derive(Debug, thiserror::Error)]
pub enum PlcSubmitError {
    /// The directory refused the operation.
    #[error("the PLC directory refused the operation: {0}")]
    Rejected(String),
    /// The directory could not be reached or failed.
    #[error("the PLC directory failed: {0}")]
    Unavailable(String),
}

impl Plc {
    /// Submits a signed operation for `did`.
    pub async fn submit(&self, did: &Did, op: &SignedOp) -> Result<(), PlcSubmitError> {
        match self {
            Plc::Embedded(dir) => match dir.submit(did, op, chrono::Utc::now()).await {
                Ok(_) => Ok(()),
                Err(e) if e.is_rejection() => Err(PlcSubmitError::Rejected(e.to_string())),
                Err(e) => Err(PlcSubmitError::Unavailable(e.to_string())),
            },
            Plc::Remote(client) => client.submit(did, op).await.map_err(|e| match e {
                atp_identity::resolve::PlcError::Rejected { message, .. } => {
                    PlcSubmitError::Rejected(message)
                }
                other => PlcSubmitError::Unavailable(other.to_string()),
            }),
        }
    }
}

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    store: Store,
    secrets: Secrets,
    plc: Plc,
    writer: RepoWriter,
    sequencer: Sequencer,
    resolver: Option<IdentityResolver>,
    lexicons: Arc<atp_lexicon::Catalog>,
    upstream: crate::api::proxy::Upstream,
    mailer: crate::service::mailer::Mailer,
    lexicon_cache: crate::service::lexicon_resolve::LexiconCache,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Wires the services together; `resolver` resolves identities hosted elsewhere (`None`:
    /// only local accounts are known, as in tests).
    pub fn new(
        config: Config,
        store: Store,
        secrets: Secrets,
        plc: Plc,
        resolver: Option<IdentityResolver>,
    ) -> AppState {
        let writer = RepoWriter::new(store.clone(), &config);
        let sequencer = Sequencer::new(store.clone());
        let upstream = crate::api::proxy::Upstream::new(&config);
        // The configuration was checked when parsed; a mailer that cannot be built only logs.
        let mailer =
            crate::service::mailer::Mailer::new(config.email.as_ref()).unwrap_or_else(|e| {
                tracing::error!(error = %e, "emails will be logged, not sent");
                crate::service::mailer::Mailer::log_only()
            });
        AppState {
            inner: Arc::new(Inner {
                config,
                store,
                secrets,
                plc,
                writer,
                sequencer,
                resolver,
                lexicons: crate::lexicons::catalog(),
                upstream,
                mailer,
                lexicon_cache: Default::default(),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The secrets.
    pub fn secrets(&self) -> &Secrets {
        &self.inner.secrets
    }

    /// The PLC directory.
    pub fn plc(&self) -> &Plc {
        &self.inner.plc
    }

    /// Resolved Lexicons (`com.atproto.lexicon.resolveLexicon`), per NSID.
    pub fn lexicon_cache(&self) -> &crate::service::lexicon_resolve::LexiconCache {
        &self.inner.lexicon_cache
    }

    /// The network identity resolver, if any.
    pub fn resolver(&self) -> Option<&IdentityResolver> {
        self.inner.resolver.as_ref()
    }

    /// The one repository write path.
    pub fn writer(&self) -> &RepoWriter {
        &self.inner.writer
    }

    /// The proxy's outbound HTTP clients.
    pub fn upstream(&self) -> &crate::api::proxy::Upstream {
        &self.inner.upstream
    }

    /// The Lexicon schemas (the embedded `lexicons/` tree).
    pub fn lexicons(&self) -> &atp_lexicon::Catalog {
        &self.inner.lexicons
    }

    /// The firehose fan-out.
    pub fn sequencer(&self) -> &Sequencer {
        &self.inner.sequencer
    }

    /// Outgoing email.
    pub fn mailer(&self) -> &crate::service::mailer::Mailer {
        &self.inner.mailer
    }
}
