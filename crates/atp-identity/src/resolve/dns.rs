//! The DNS seams: TXT records for handles ([`TxtLookup`]) and addresses for the HTTP client
//! ([`AddrLookup`]), with a hickory implementation ([`HickoryDns`]) and an in-memory one for tests
//! ([`StaticDns`]).
//!
//! Both return an empty list, not an error, when the name does not exist (NXDOMAIN) or has no
//! records of the type asked for; errors are for failures (timeouts, SERVFAIL, bad names).

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;

/// A boxed DNS answer future (the traits are used as `Arc<dyn …>`).
pub type DnsFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, DnsError>> + Send + 'a>>;

/// Why a DNS query failed (not "no such name": that is an empty answer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// The name is not a valid DNS name.
    #[error("invalid DNS name {name:?}")]
    InvalidName {
        /// The name.
        name: String,
    },
    /// The resolver failed (timeout, server failure, no nameserver reachable).
    #[error("DNS lookup of {name} failed: {reason}")]
    Failed {
        /// The name queried.
        name: String,
        /// The resolver's message.
        reason: String,
    },
}

/// TXT lookups, for `_atproto.<handle>` and `_lexicon.<authority>`.
pub trait TxtLookup: Send + Sync {
    /// The TXT records of `name`, one string per record (its character-strings concatenated,
    /// invalid UTF-8 replaced); empty when the name or the records do not exist.
    fn txt<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<String>>;
}

/// Address lookups, for the HTTP client's connections.
pub trait AddrLookup: Send + Sync {
    /// The IPv4 and IPv6 addresses of `host`; empty when the name does not exist.
    fn addrs<'a>(&'a self, host: &'a str) -> DnsFuture<'a, Vec<IpAddr>>;
}

/// DNS through hickory, configured from the system (`/etc/resolv.conf`) or given name servers.
#[derive(Clone)]
pub struct HickoryDns {
    resolver: TokioResolver,
}

impl std::fmt::Debug for HickoryDns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HickoryDns").finish_non_exhaustive()
    }
}

impl HickoryDns {
    /// A resolver using the system configuration.
    pub fn from_system() -> Result<HickoryDns, DnsError> {
        let resolver = TokioResolver::builder_tokio()
            .and_then(|b| b.build())
            .map_err(|e| DnsError::Failed {
                name: "(system configuration)".to_owned(),
                reason: e.to_string(),
            })?;
        Ok(HickoryDns { resolver })
    }

    /// A resolver asking these name servers (UDP, then TCP for truncated answers, each on its
    /// port) instead of the system's, with hickory's default options. An empty list is refused.
    pub fn with_nameservers(servers: &[SocketAddr]) -> Result<HickoryDns, DnsError> {
        if servers.is_empty() {
            return Err(DnsError::Failed {
                name: "(name server list)".to_owned(),
                reason: "no name servers given".to_owned(),
            });
        }
        let name_servers = servers
            .iter()
            .map(|server| {
                let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
                    .into_iter()
                    .map(|mut connection| {
                        connection.port = server.port();
                        connection
                    })
                    .collect();
                NameServerConfig::new(server.ip(), true, connections)
            })
            .collect();
        let config = ResolverConfig::from_name_servers(name_servers);
        let resolver = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .build()
            .map_err(|e| DnsError::Failed {
                name: "(name server configuration)".to_owned(),
                reason: e.to_string(),
            })?;
        Ok(HickoryDns { resolver })
    }

    /// Wraps an already configured hickory resolver.
    pub fn new(resolver: TokioResolver) -> HickoryDns {
        HickoryDns { resolver }
    }
}

/// Maps "no such name / no such record" to an empty answer, anything else to an error.
fn empty_or_error<T>(name: &str, err: &NetError) -> Result<Vec<T>, DnsError> {
    if err.is_nx_domain() || err.is_no_records_found() {
        Ok(Vec::new())
    } else {
        Err(DnsError::Failed {
            name: name.to_owned(),
            reason: err.to_string(),
        })
    }
}

/// An absolute name, so the system's search domains are never appended.
fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}

impl TxtLookup for HickoryDns {
    fn txt<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<String>> {
        Box::pin(async move {
            match self.resolver.txt_lookup(fqdn(name)).await {
                Ok(lookup) => Ok(lookup
                    .answers()
                    .iter()
                    .filter_map(|record| match &record.data {
                        RData::TXT(txt) => Some(
                            txt.txt_data
                                .iter()
                                .map(|part| String::from_utf8_lossy(part))
                                .collect::<String>(),
                        ),
                        _ => None,
                    })
                    .collect()),
                Err(err) => empty_or_error(name, &err),
            }
        })
    }
}

impl AddrLookup for HickoryDns {
    fn addrs<'a>(&'a self, host: &'a str) -> DnsFuture<'a, Vec<IpAddr>> {
        Box::pin(async move {
            match self.resolver.lookup_ip(fqdn(host)).await {
                Ok(lookup) => Ok(lookup.iter().collect()),
                Err(err) => empty_or_error(host, &err),
            }
        })
    }
}

/// Fixed answers, for tests and local setups: names not listed do not exist.
#[derive(Debug, Clone, Default)]
pub struct StaticDns {
    txt: HashMap<String, Vec<String>>,
    addrs: HashMap<String, Vec<IpAddr>>,
}

impl StaticDns {
    /// No names at all.
    pub fn new() -> StaticDns {
        StaticDns::default()
    }

    /// Adds a TXT record to `name` (case-insensitive).
    pub fn with_txt(mut self, name: &str, value: &str) -> StaticDns {
        self.txt
            .entry(normalize(name))
            .or_default()
            .push(value.to_owned());
        self
    }

    /// Adds an address to `host` (case-insensitive).
    pub fn with_addr(mut self, host: &str, addr: IpAddr) -> StaticDns {
        self.addrs.entry(normalize(host)).or_default().push(addr);
        self
    }
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl TxtLookup for StaticDns {
    fn txt<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<String>> {
        let answer = self.txt.get(&normalize(name)).cloned().unwrap_or_default();
        Box::pin(std::future::ready(Ok(answer)))
    }
}

impl AddrLookup for StaticDns {
    fn addrs<'a>(&'a self, host: &'a str) -> DnsFuture<'a, Vec<IpAddr>> {
        let answer = self
            .addrs
            .get(&normalize(host))
            .cloned()
            .unwrap_or_default();
        Box::pin(std::future::ready(Ok(answer)))
    }
}
