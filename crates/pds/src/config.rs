//! The server's configuration, read once from the reference PDS's environment variables.
//!
//! [`Config::from_vars`] is pure (it takes the variables as pairs), so it is unit-tested; start-up
//! calls [`Config::from_env`]. A malformed value stops start-up with a [`ConfigError`] naming the
//! variable. Reference variables this server does not support are reported as warnings.
//!
//! Zero configuration means development mode: `127.0.0.1:2583`, data under `./data`, handles
//! under `.test`, and an embedded PLC directory on `127.0.0.1:2582`
//! (`PDS_PLC_EMBEDDED_PORT`, our own variable, moves it).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// Default port of the PDS.
pub const DEFAULT_PORT: u16 = 2583;
/// Default port of the embedded PLC directory.
pub const DEFAULT_PLC_PORT: u16 = 2582;
/// Default largest blob upload, in bytes (the reference's 5 MiB).
pub const DEFAULT_BLOB_UPLOAD_LIMIT: u64 = 5 * 1024 * 1024;
/// How long firehose events are kept, in milliseconds (the reference's default: 24 hours).
pub const DEFAULT_REPO_BACKFILL_LIMIT_MS: u64 = 24 * 60 * 60 * 1000;

/// Variables read by [`Config::from_vars`].
const SUPPORTED: &[&str] = &[
    "PDS_HOSTNAME",
    "PDS_PORT",
    "PDS_DATA_DIRECTORY",
    "PDS_BLOBSTORE_DISK_LOCATION",
    "PDS_JWT_SECRET",
    "PDS_ADMIN_PASSWORD",
    "PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX",
    "PDS_DID_PLC_URL",
    "PDS_PLC_EMBEDDED_PORT",
    "PDS_SERVICE_HANDLE_DOMAINS",
    "PDS_INVITE_REQUIRED",
    "PDS_BLOB_UPLOAD_LIMIT",
    "PDS_CRAWLERS",
    "PDS_REPO_BACKFILL_LIMIT_MS",
    "PDS_BSKY_APP_VIEW_URL",
    "PDS_BSKY_APP_VIEW_DID",
    "PDS_REPORT_SERVICE_URL",
    "PDS_REPORT_SERVICE_DID",
    "PDS_DEV_MODE",
    "PDS_MAX_REPO_IMPORT_SIZE",
    "PDS_ACCEPTING_REPO_IMPORTS",
    // email and jobs
    "PDS_EMAIL_SMTP_URL",
    "PDS_EMAIL_FROM_ADDRESS",
    "PDS_JOBS_INTERVAL_MS",
    "PDS_BLOB_TEMP_TTL_MS",
    // DNS (handles and Lexicon authorities)
    "PDS_DNS_NAMESERVERS",
    "PDS_HANDLE_BACKUP_NAMESERVERS",
];

/// A configuration variable with a malformed value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {problem}")]
pub struct ConfigError {
    /// The variable.
    pub var: &'static str,
    /// What is wrong with its value.
    pub problem: String,
}

/// Where `did:plc` operations go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlcConfig {
    /// Run the embedded directory in this process, listening on this port (loopback).
    Embedded {
        /// Its port.
        port: u16,
    },
    /// Use the directory at this URL.
    Remote {
        /// Its base URL.
        url: String,
    },
}

/// A service we point clients at (app view, moderation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRef {
    /// Its URL.
    pub url: String,
    /// Its DID.
    pub did: String,
}

/// The typed configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// Public host name (`PDS_HOSTNAME`; default `localhost`).
    pub hostname: String,
    /// Listening port (`PDS_PORT`).
    pub port: u16,
    /// Data directory (`PDS_DATA_DIRECTORY`; default `./data`).
    pub data_dir: PathBuf,
    /// Blob directory (`PDS_BLOBSTORE_DISK_LOCATION`; default `<data>/blobs`).
    pub blobstore_dir: PathBuf,
    /// HS256 secret for session tokens; `None`: generated and kept in the data directory.
    pub jwt_secret: Option<String>,
    /// Admin password; `None`: generated and kept in the data directory.
    pub admin_password: Option<String>,
    /// PLC rotation key (k256, hex); `None`: generated and kept in the data directory.
    pub plc_rotation_key_hex: Option<String>,
    /// The PLC directory.
    pub plc: PlcConfig,
    /// Handle suffixes users may register under, each starting with `.`.
    pub service_handle_domains: Vec<String>,
    /// Whether createAccount needs an invite code.
    pub invite_required: bool,
    /// Largest blob upload, in bytes.
    pub blob_upload_limit: u64,
    /// `PDS_MAX_REPO_IMPORT_SIZE`: largest repository CAR `importRepo` accepts, in bytes
    /// (default: the blob upload limit, as the reference).
    pub max_repo_import_size: u64,
    /// `PDS_ACCEPTING_REPO_IMPORTS` (default true): whether `importRepo` is open.
    pub accepting_repo_imports: bool,
    /// `PDS_EMAIL_SMTP_URL` and `PDS_EMAIL_FROM_ADDRESS` (both or neither); `None`: emails are
    /// logged, not sent.
    pub email: Option<crate::service::mailer::EmailConfig>,
    /// `PDS_JOBS_INTERVAL_MS` (ours; default 1 minute): how often the background jobs run.
    pub jobs_interval: std::time::Duration,
    /// `PDS_BLOB_TEMP_TTL_MS` (ours; default 1 hour): how long an upload no record references
    /// is kept.
    pub blob_temp_ttl: std::time::Duration,
    /// Relays to notify of updates.
    pub crawlers: Vec<String>,
    /// `PDS_REPO_BACKFILL_LIMIT_MS`: how long firehose events are kept (and replayable).
    pub repo_backfill_limit: std::time::Duration,
    /// The app view, if configured.
    pub bsky_app_view: Option<ServiceRef>,
    /// The report service, if configured.
    pub report_service: Option<ServiceRef>,
    /// `PDS_DNS_NAMESERVERS` (ours): the name servers asked for TXT records (handles,
    /// `_lexicon` authorities), `ip[:port]` each (port 53 by default); empty: the system's
    /// (`/etc/resolv.conf`).
    pub dns_nameservers: Vec<SocketAddr>,
    /// `PDS_HANDLE_BACKUP_NAMESERVERS`: name servers asked for a handle's TXT record when
    /// neither DNS nor the HTTPS well-known file gave a DID (`ip[:port]` each; empty: none).
    pub handle_backup_nameservers: Vec<SocketAddr>,
    /// Development mode: `http://` endpoint with the port, loopback listener.
    pub dev_mode: bool,
    /// `LOG_LEVEL` (a tracing filter; default `info`).
    pub log_level: String,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("hostname", &self.hostname)
            .field("port", &self.port)
            .field("data_dir", &self.data_dir)
            .field("plc", &self.plc)
            .field("dev_mode", &self.dev_mode)
            .finish_non_exhaustive()
    }
}

/// The variables, with lookups that record which were used.
struct Vars(BTreeMap<String, String>);

impl Vars {
    fn get(&self, var: &'static str) -> Option<&str> {
        self.0.get(var).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    fn bool(&self, var: &'static str) -> Result<Option<bool>, ConfigError> {
        self.get(var)
            .map(|v| match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(true),
                "false" | "0" | "no" => Ok(false),
                _ => Err(bad(var, format!("expected true or false, got {v:?}"))),
            })
            .transpose()
    }

    fn number<T: std::str::FromStr>(&self, var: &'static str) -> Result<Option<T>, ConfigError> {
        self.get(var)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|_| bad(var, format!("expected a non-negative integer, got {v:?}")))
            })
            .transpose()
    }

    fn url(&self, var: &'static str) -> Result<Option<String>, ConfigError> {
        self.get(var)
            .map(|v| {
                let rest = v
                    .strip_prefix("https://")
                    .or_else(|| v.strip_prefix("http://"));
                match rest {
                    Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => {
                        Ok(v.trim_end_matches('/').to_owned())
                    }
                    _ => Err(bad(var, format!("expected an http(s) URL, got {v:?}"))),
                }
            })
            .transpose()
    }

    fn service(
        &self,
        url_var: &'static str,
        did_var: &'static str,
    ) -> Result<Option<ServiceRef>, ConfigError> {
        let url = self.url(url_var)?;
        let did = self
            .get(did_var)
            .map(|d| {
                d.parse::<atp_syntax::Did>()
                    .map(|d| d.to_string())
                    .map_err(|e| bad(did_var, format!("not a DID: {e}")))
            })
            .transpose()?;
        match (url, did) {
            (Some(url), Some(did)) => Ok(Some(ServiceRef { url, did })),
            (None, None) => Ok(None),
            (Some(_), None) => Err(bad(did_var, format!("required when {url_var} is set"))),
            (None, Some(_)) => Err(bad(url_var, format!("required when {did_var} is set"))),
        }
    }
}

fn bad(var: &'static str, problem: String) -> ConfigError {
    ConfigError { var, problem }
}

impl Config {
    /// Reads the process environment (see [`Config::from_vars`]).
    pub fn from_env() -> Result<(Config, Vec<String>), ConfigError> {
        Config::from_vars(std::env::vars())
    }

    /// Parses the variables; returns the configuration and warnings about reference variables
    /// (`PDS_*`) that this server ignores.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Config, Vec<String>), ConfigError> {
        let vars = Vars(vars.into_iter().collect());
        let warnings = vars
            .0
            .keys()
            .filter(|k| k.starts_with("PDS_") && !SUPPORTED.contains(&k.as_str()))
            .map(|k| format!("{k} is not supported by this server and is ignored"))
            .collect();
        let hostname = match vars.get("PDS_HOSTNAME") {
            Some(h) => parse_hostname(h)?,
            None => "localhost".to_owned(),
        };
        let dev_mode = vars
            .bool("PDS_DEV_MODE")?
            .unwrap_or(vars.get("PDS_HOSTNAME").is_none());
        let data_dir = PathBuf::from(vars.get("PDS_DATA_DIRECTORY").unwrap_or("./data"));
        let blobstore_dir = vars
            .get("PDS_BLOBSTORE_DISK_LOCATION")
            .map(PathBuf::from)
            .unwrap_or_else(|| data_dir.join("blobs"));
        let plc = match vars.url("PDS_DID_PLC_URL")? {
            Some(url) => PlcConfig::Remote { url },
            None => PlcConfig::Embedded {
                port: vars
                    .number("PDS_PLC_EMBEDDED_PORT")?
                    .unwrap_or(DEFAULT_PLC_PORT),
            },
        };
        let rotation = vars.get("PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX");
        if let Some(hex) = rotation {
            atp_crypto::Keypair::from_private_hex(atp_crypto::Curve::K256, hex).map_err(|e| {
                bad(
                    "PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX",
                    format!("not a k256 private key: {e}"),
                )
            })?;
        }
        let blob_upload_limit = vars
            .number("PDS_BLOB_UPLOAD_LIMIT")?
            .unwrap_or(DEFAULT_BLOB_UPLOAD_LIMIT);
        let email = parse_email(&vars)?;
        let config = Config {
            email,
            jobs_interval: std::time::Duration::from_millis(
                vars.number("PDS_JOBS_INTERVAL_MS")?
                    .unwrap_or(60_000)
                    .max(1),
            ),
            blob_temp_ttl: std::time::Duration::from_millis(
                vars.number("PDS_BLOB_TEMP_TTL_MS")?
                    .unwrap_or(60 * 60 * 1000),
            ),
            max_repo_import_size: vars
                .number("PDS_MAX_REPO_IMPORT_SIZE")?
                .unwrap_or(blob_upload_limit),
            accepting_repo_imports: vars.bool("PDS_ACCEPTING_REPO_IMPORTS")?.unwrap_or(true),
            port: vars.number("PDS_PORT")?.unwrap_or(DEFAULT_PORT),
            service_handle_domains: parse_domains(vars.get("PDS_SERVICE_HANDLE_DOMAINS"))?,
            invite_required: vars.bool("PDS_INVITE_REQUIRED")?.unwrap_or(false),
            blob_upload_limit,
            crawlers: parse_crawlers(vars.get("PDS_CRAWLERS"))?,
            repo_backfill_limit: std::time::Duration::from_millis(
                vars.number("PDS_REPO_BACKFILL_LIMIT_MS")?
                    .unwrap_or(DEFAULT_REPO_BACKFILL_LIMIT_MS),
            ),
            bsky_app_view: vars.service("PDS_BSKY_APP_VIEW_URL", "PDS_BSKY_APP_VIEW_DID")?,
            report_service: vars.service("PDS_REPORT_SERVICE_URL", "PDS_REPORT_SERVICE_DID")?,
            jwt_secret: vars.get("PDS_JWT_SECRET").map(str::to_owned),
            admin_password: vars.get("PDS_ADMIN_PASSWORD").map(str::to_owned),
            plc_rotation_key_hex: rotation.map(str::to_owned),
            log_level: vars.get("LOG_LEVEL").unwrap_or("info").to_owned(),
            dns_nameservers: parse_nameservers(&vars, "PDS_DNS_NAMESERVERS")?,
            handle_backup_nameservers: parse_nameservers(&vars, "PDS_HANDLE_BACKUP_NAMESERVERS")?,
            hostname,
            dev_mode,
            data_dir,
            blobstore_dir,
            plc,
        };
        Ok((config, warnings))
    }

    /// The public URL of this PDS: `http://host:port` in dev mode, else `https://host`.
    pub fn public_url(&self) -> String {
        if self.dev_mode {
            format!("http://{}:{}", self.hostname, self.port)
        } else {
            format!("https://{}", self.hostname)
        }
    }

    /// The server's own DID (`did:web:<hostname>`), the audience of its session tokens.
    pub fn service_did(&self) -> String {
        format!("did:web:{}", self.hostname)
    }

    /// The address to listen on: loopback in dev mode, all interfaces otherwise.
    pub fn listen_addr(&self) -> SocketAddr {
        let ip = if self.dev_mode {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        };
        SocketAddr::new(ip, self.port)
    }

    /// The PLC directory's base URL.
    pub fn plc_url(&self) -> String {
        match &self.plc {
            PlcConfig::Embedded { port } => format!("http://127.0.0.1:{port}"),
            PlcConfig::Remote { url } => url.clone(),
        }
    }
}

/// Both email variables or neither (as the reference), checked without connecting.
fn parse_email(vars: &Vars) -> Result<Option<crate::service::mailer::EmailConfig>, ConfigError> {
    let url = vars.get("PDS_EMAIL_SMTP_URL");
    let from = vars.get("PDS_EMAIL_FROM_ADDRESS");
    let (smtp_url, from_address) = match (url, from) {
        (None, None) => return Ok(None),
        (Some(u), Some(f)) => (u.to_owned(), f.to_owned()),
        (Some(_), None) => {
            return Err(bad(
                "PDS_EMAIL_FROM_ADDRESS",
                "required when PDS_EMAIL_SMTP_URL is set".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(bad(
                "PDS_EMAIL_SMTP_URL",
                "required when PDS_EMAIL_FROM_ADDRESS is set".into(),
            ));
        }
    };
    let email = crate::service::mailer::EmailConfig {
        smtp_url,
        from_address,
    };
    crate::service::mailer::check_config(&email).map_err(|(var, problem)| bad(var, problem))?;
    Ok(Some(email))
}

fn parse_hostname(h: &str) -> Result<String, ConfigError> {
    let ok = !h.contains("://")
        && !h.contains('/')
        && h.split(':').next().is_some_and(|host| {
            !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        });
    if ok {
        Ok(h.to_ascii_lowercase())
    } else {
        Err(bad(
            "PDS_HOSTNAME",
            format!("expected a bare host name such as pds.example.com, got {h:?}"),
        ))
    }
}

fn parse_domains(v: Option<&str>) -> Result<Vec<String>, ConfigError> {
    let Some(v) = v else {
        return Ok(vec![".test".to_owned()]);
    };
    v.split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            let d = if d.starts_with('.') {
                d.to_ascii_lowercase()
            } else {
                format!(".{}", d.to_ascii_lowercase())
            };
            let valid = d.len() > 1
                && d[1..].split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                });
            if valid {
                Ok(d)
            } else {
                Err(bad(
                    "PDS_SERVICE_HANDLE_DOMAINS",
                    format!("{d:?} is not a domain"),
                ))
            }
        })
        .collect()
}

/// A comma-separated list of `ip`, `ip:port` or `[ipv6]:port` (port 53 when not given).
fn parse_nameservers(vars: &Vars, var: &'static str) -> Result<Vec<SocketAddr>, ConfigError> {
    let Some(v) = vars.get(var) else {
        return Ok(Vec::new());
    };
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<SocketAddr>()
                .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                .map_err(|_| {
                    bad(
                        var,
                        format!("{s:?} is not an IP address with an optional port"),
                    )
                })
        })
        .collect()
}

fn parse_crawlers(v: Option<&str>) -> Result<Vec<String>, ConfigError> {
    let Some(v) = v else { return Ok(Vec::new()) };
    v.split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| {
            if c.starts_with("http://") || c.starts_with("https://") {
                Ok(c.trim_end_matches('/').to_owned())
            } else {
                Err(bad("PDS_CRAWLERS", format!("{c:?} is not an http(s) URL")))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<(Config, Vec<String>), ConfigError> {
        Config::from_vars(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
    }

    #[test]
    fn zero_config_is_dev_mode() {
        let (c, warnings) = parse(&[]).unwrap();
        assert!(c.dev_mode);
        assert!(warnings.is_empty());
        assert_eq!(c.listen_addr().to_string(), "127.0.0.1:2583");
        assert_eq!(c.public_url(), "http://localhost:2583");
        assert_eq!(c.service_handle_domains, vec![".test"]);
        assert_eq!(c.plc, PlcConfig::Embedded { port: 2582 });
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.blobstore_dir, PathBuf::from("./data/blobs"));
        assert_eq!(c.blob_upload_limit, DEFAULT_BLOB_UPLOAD_LIMIT);
    }

    #[test]
    fn full_config() {
        let (c, warnings) = parse(&[
            ("PDS_HOSTNAME", "PDS.Example.com"),
            ("PDS_PORT", "3000"),
            ("PDS_DATA_DIRECTORY", "/pds"),
            ("PDS_DID_PLC_URL", "https://plc.directory/"),
            ("PDS_SERVICE_HANDLE_DOMAINS", "example.com, .other.org"),
            ("PDS_INVITE_REQUIRED", "true"),
            ("PDS_BLOB_UPLOAD_LIMIT", "1000"),
            ("PDS_CRAWLERS", "https://bsky.network"),
            ("PDS_BSKY_APP_VIEW_URL", "https://api.bsky.app"),
            ("PDS_BSKY_APP_VIEW_DID", "did:web:api.bsky.app"),
            ("PDS_EMAIL_SMTP_URL", "smtp://user:secret@mail.example.com"),
            ("PDS_EMAIL_FROM_ADDRESS", "PDS <pds@example.com>"),
            ("PDS_MODERATION_EMAIL_SMTP_URL", "smtp://x"),
            ("HOME", "/root"),
        ])
        .unwrap();
        assert!(!c.dev_mode);
        assert_eq!(c.hostname, "pds.example.com");
        assert_eq!(c.public_url(), "https://pds.example.com");
        assert_eq!(c.listen_addr().port(), 3000);
        assert_eq!(c.blobstore_dir, PathBuf::from("/pds/blobs"));
        assert_eq!(
            c.plc,
            PlcConfig::Remote {
                url: "https://plc.directory".into()
            }
        );
        assert_eq!(c.service_handle_domains, vec![".example.com", ".other.org"]);
        assert!(c.invite_required);
        assert_eq!(c.blob_upload_limit, 1000);
        assert_eq!(c.crawlers, vec!["https://bsky.network"]);
        assert_eq!(
            c.repo_backfill_limit,
            std::time::Duration::from_millis(DEFAULT_REPO_BACKFILL_LIMIT_MS)
        );
        assert_eq!(c.bsky_app_view.unwrap().did, "did:web:api.bsky.app");
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("PDS_MODERATION_EMAIL_SMTP_URL"));
        assert_eq!(c.email.unwrap().from_address, "PDS <pds@example.com>");
    }

    #[test]
    fn dns_name_servers() {
        let (c, warnings) = parse(&[]).unwrap();
        assert!(c.dns_nameservers.is_empty() && c.handle_backup_nameservers.is_empty());
        assert!(warnings.is_empty());
        let (c, warnings) = parse(&[
            ("PDS_DNS_NAMESERVERS", "127.0.0.1:5353, 10.0.0.1,[::1]:54"),
            ("PDS_HANDLE_BACKUP_NAMESERVERS", "::1"),
        ])
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let addrs: Vec<String> = c.dns_nameservers.iter().map(|a| a.to_string()).collect();
        assert_eq!(addrs, ["127.0.0.1:5353", "10.0.0.1:53", "[::1]:54"]);
        assert_eq!(c.handle_backup_nameservers[0].to_string(), "[::1]:53");
        for bad in ["dns.example.com", "127.0.0.1:99999", "1.2.3"] {
            let e = parse(&[("PDS_HANDLE_BACKUP_NAMESERVERS", bad)]).unwrap_err();
            assert_eq!(e.var, "PDS_HANDLE_BACKUP_NAMESERVERS", "{bad}");
        }
    }

    #[test]
    fn dev_mode_with_hostname() {
        let (c, _) = parse(&[("PDS_HOSTNAME", "localhost"), ("PDS_DEV_MODE", "1")]).unwrap();
        assert!(c.dev_mode);
        assert_eq!(c.public_url(), "http://localhost:2583");
    }

    #[test]
    fn malformed_values_name_the_variable() {
        let cases: &[(&str, &str)] = &[
            ("PDS_PORT", "http"),
            ("PDS_PORT", "70000"),
            ("PDS_INVITE_REQUIRED", "maybe"),
            ("PDS_BLOB_UPLOAD_LIMIT", "-1"),
            ("PDS_DID_PLC_URL", "plc.directory"),
            ("PDS_HOSTNAME", "https://pds.example.com"),
            ("PDS_SERVICE_HANDLE_DOMAINS", ".bad_domain"),
            ("PDS_CRAWLERS", "bsky.network"),
            ("PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX", "zz"),
            ("PDS_BSKY_APP_VIEW_URL", "https://api.bsky.app"),
            ("PDS_PLC_EMBEDDED_PORT", "x"),
            ("PDS_DEV_MODE", "on-ish"),
            ("PDS_JOBS_INTERVAL_MS", "soon"),
        ];
        for (var, value) in cases {
            let err = parse(&[(var, value)]).unwrap_err();
            let expected = if *var == "PDS_BSKY_APP_VIEW_URL" {
                "PDS_BSKY_APP_VIEW_DID"
            } else {
                var
            };
            assert_eq!(err.var, expected, "{var}={value}: {err}");
            assert!(err.to_string().starts_with(expected), "{err}");
        }
    }

    #[test]
    fn email_needs_both_variables_and_valid_values() {
        let (c, _) = parse(&[]).unwrap();
        assert_eq!(c.email, None);
        assert_eq!(c.jobs_interval, std::time::Duration::from_secs(60));
        assert_eq!(c.blob_temp_ttl, std::time::Duration::from_secs(3600));
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("PDS_EMAIL_SMTP_URL", "smtp://h")],
                "PDS_EMAIL_FROM_ADDRESS",
            ),
            (&[("PDS_EMAIL_FROM_ADDRESS", "a@b.c")], "PDS_EMAIL_SMTP_URL"),
            (
                &[
                    ("PDS_EMAIL_SMTP_URL", "mail.example.com"),
                    ("PDS_EMAIL_FROM_ADDRESS", "a@b.c"),
                ],
                "PDS_EMAIL_SMTP_URL",
            ),
            (
                &[
                    ("PDS_EMAIL_SMTP_URL", "smtp://h"),
                    ("PDS_EMAIL_FROM_ADDRESS", "nobody"),
                ],
                "PDS_EMAIL_FROM_ADDRESS",
            ),
        ];
        for (pairs, var) in cases {
            assert_eq!(parse(pairs).unwrap_err().var, *var, "{pairs:?}");
        }
    }
}
