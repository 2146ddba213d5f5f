//! Identity resolution over the network (the `http` feature): a PLC directory client, `did:web`
//! fetching, handle resolution by DNS TXT and HTTPS, a caching [`IdentityResolver`] implementing
//! [`crate::Resolver`], and the SSRF guard all of it goes through.
//!
//! What lives where:
//! - [`PlcClient`]: the PLC directory's HTTP API (`/{did}`, `/{did}/data`, `/{did}/log/audit`,
//!   `/{did}/log/last`, `POST /{did}`). The directory URL is configuration, so it is *trusted*:
//!   loopback and plain `http` are fine there.
//! - [`IdentityResolver`]: `did:plc` through the PLC client, `did:web` through
//!   `https://<host>/.well-known/did.json`, handles through [`TxtLookup`] then
//!   `https://<handle>/.well-known/atproto-did`; answers cached with stale-while-revalidate.
//! - [`dns`]: the DNS seams ([`TxtLookup`], [`AddrLookup`]) and their hickory implementation.
//!   TXT lookups may go to given name servers ([`HickoryDns::with_nameservers`]), with backup
//!   servers asked last for handles; [`IdentityResolver::resolve_lexicon_authority`] reads
//!   `_lexicon.<authority>` records for Lexicon resolution.
//! - [`ssrf`]: which addresses a user-influenced URL may reach.
//!
//! # Tricky bits
//! - Every URL that comes from a DID or a handle is *untrusted*: https only, and neither a
//!   literal IP host nor any address DNS returns for a name may be private, loopback,
//!   link-local, CGNAT, multicast, unspecified, documentation or unique-local (IPv4-mapped and
//!   NAT64 forms included). One bad address refuses the whole name, so a DNS answer mixing a
//!   public and a private address cannot be used for rebinding. Redirects are followed (at most
//!   [`MAX_REDIRECTS`]) only to URLs passing the same checks; system proxies are never used.
//! - Bodies are streamed with a cap ([`Limits`]); a `Content-Length` above the cap is refused
//!   before reading. Connect and total timeouts apply to every request.
//! - [`ResolverConfig::allow_private_addresses`] is the dev/test switch: it lifts the address
//!   checks, allows plain `http`, ports in `did:web` (`did:web:localhost%3A2583`), and handles
//!   under reserved TLDs. Never turn it on in production.
//! - Handle answers are not trusted on their own: [`crate::handle::resolve_verified`] checks that
//!   the DID document claims the handle back.

mod cache;
pub mod dns;
mod fetch;
mod plc_client;
mod resolver;
pub mod ssrf;
mod web;

#[cfg(test)]
mod tests;

use std::time::Duration;

pub use cache::{CachePolicy, Clock, ManualClock, SystemClock};
pub use dns::{AddrLookup, DnsError, HickoryDns, StaticDns, TxtLookup};
pub use fetch::FetchError;
pub use plc_client::{PlcClient, PlcError};
pub use resolver::{BuildError, IdentityResolver, IdentityResolverBuilder, lexicon_dns_name};
pub use web::{DID_WEB_PATH, DidWebError, RESERVED_TLDS, did_web_url, handle_tld_is_reserved};

/// The public PLC directory.
pub const DEFAULT_PLC_URL: &str = "https://plc.directory";

/// The default `User-Agent`.
pub const USER_AGENT: &str = concat!("atp-identity/", env!("CARGO_PKG_VERSION"));

/// Most redirects followed for one untrusted fetch.
pub const MAX_REDIRECTS: usize = 3;

/// Timeouts and response-size caps for outbound requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Time allowed to establish a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Time allowed for a whole request, from connecting to the end of the body.
    pub request_timeout: Duration,
    /// Largest DID document, PLC data or single operation accepted, in bytes.
    pub max_document_bytes: usize,
    /// Largest `/.well-known/atproto-did` body accepted, in bytes.
    pub max_handle_body_bytes: usize,
    /// Largest PLC audit log accepted, in bytes.
    pub max_log_bytes: usize,
}

impl Default for Limits {
    /// 3 s to connect, 10 s in all; 64 KiB documents, 1 KiB handle bodies, 4 MiB audit logs.
    fn default() -> Limits {
        Limits {
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(10),
            max_document_bytes: 64 * 1024,
            max_handle_body_bytes: 1024,
            max_log_bytes: 4 * 1024 * 1024,
        }
    }
}

/// Configuration of an [`IdentityResolver`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverConfig {
    /// Base URL of the PLC directory (no trailing path). Trusted: any scheme and address.
    pub plc_url: String,
    /// Dev/tests only: allow private and loopback addresses, plain `http`, ports in `did:web`,
    /// and handles under reserved TLDs (except `.invalid`).
    pub allow_private_addresses: bool,
    /// Dev/tests only, ignored unless [`ResolverConfig::allow_private_addresses`]: fetch handle
    /// well-known files, and `did:web` documents without an explicit port, over plain `http` on
    /// this port (a local test server) instead of `https` on 443.
    pub dev_http_port: Option<u16>,
    /// Timeouts and size caps.
    pub limits: Limits,
    /// Caching of DID documents and handle resolutions.
    pub cache: CachePolicy,
    /// `User-Agent` sent with every request.
    pub user_agent: String,
}

impl Default for ResolverConfig {
    /// The public PLC directory, production rules, default limits and cache.
    fn default() -> ResolverConfig {
        ResolverConfig {
            plc_url: DEFAULT_PLC_URL.to_owned(),
            allow_private_addresses: false,
            dev_http_port: None,
            limits: Limits::default(),
            cache: CachePolicy::default(),
            user_agent: USER_AGENT.to_owned(),
        }
    }
}

impl ResolverConfig {
    /// The default configuration with another PLC directory.
    pub fn with_plc_url(plc_url: impl Into<String>) -> ResolverConfig {
        ResolverConfig {
            plc_url: plc_url.into(),
            ..ResolverConfig::default()
        }
    }
}
