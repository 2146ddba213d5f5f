//! URLs for the HTTPS parts of resolution: `did:web` documents and handle well-known files, and
//! the reserved TLDs that are never resolved.

use atp_syntax::{Did, Handle};
use reqwest::Url;

use super::ResolverConfig;
use super::fetch::FetchError;
use crate::handle::WELL_KNOWN_PATH;

/// Path of a `did:web` document.
pub const DID_WEB_PATH: &str = "/.well-known/did.json";

/// TLDs whose handles are never resolved (as in the reference's `DISALLOWED_TLDS`); `.test` is
/// allowed for testing.
pub const RESERVED_TLDS: &[&str] = &[
    "alt",
    "arpa",
    "example",
    "internal",
    "invalid",
    "local",
    "localhost",
    "onion",
];

/// Why a `did:web` cannot be turned into a URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DidWebError {
    /// Not a `did:web`.
    #[error("not a did:web")]
    NotWeb,
    /// `did:web:host:path…`: atproto only supports host-level `did:web`.
    #[error("did:web with a path is not supported by atproto")]
    PathNotSupported,
    /// `did:web:host%3Aport`: only allowed in dev mode.
    #[error("did:web with a port is only allowed in dev mode")]
    PortNotAllowed,
    /// The host part is not a plain host name (or the port is not a number).
    #[error("did:web host {host:?} is not a valid host name")]
    InvalidHost {
        /// The method-specific identifier.
        host: String,
    },
}

/// Whether `handle` ends in a TLD that is never resolved ([`RESERVED_TLDS`]).
pub fn handle_tld_is_reserved(handle: &Handle) -> bool {
    let lower = handle.as_str().to_ascii_lowercase();
    lower
        .rsplit('.')
        .next()
        .is_some_and(|tld| RESERVED_TLDS.contains(&tld))
}

fn dev(config: &ResolverConfig) -> bool {
    config.allow_private_addresses
}

/// Whether a host name is plain: ASCII letters, digits, `-` and `.`, non-empty labels.
fn is_plain_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

/// The document URL of a `did:web`: `https://<host>/.well-known/did.json`.
///
/// In dev mode ([`ResolverConfig::allow_private_addresses`]) a port may be given
/// (`did:web:localhost%3A2583`), and plain `http` is used for `localhost`, for hosts with a port,
/// and on [`ResolverConfig::dev_http_port`] when set.
pub fn did_web_url(did: &Did, config: &ResolverConfig) -> Result<Url, DidWebError> {
    if did.method() != "web" {
        return Err(DidWebError::NotWeb);
    }
    let id = did.identifier();
    if id.contains(':') {
        return Err(DidWebError::PathNotSupported);
    }
    let invalid = || DidWebError::InvalidHost {
        host: id.to_owned(),
    };
    let lower = id.to_ascii_lowercase();
    let (host, port) = match lower.split_once("%3a") {
        None => (lower.as_str(), None),
        Some((host, port)) => {
            let port: u16 = port.parse().map_err(|_| invalid())?;
            (host, Some(port))
        }
    };
    if !is_plain_host(host) {
        return Err(invalid());
    }
    if port.is_some() && !dev(config) {
        return Err(DidWebError::PortNotAllowed);
    }
    let is_localhost = host == "localhost" || host.ends_with(".localhost");
    let dev_port = config.dev_http_port.filter(|_| dev(config));
    let (scheme, port) = match (dev(config), port, dev_port) {
        (true, Some(p), _) => ("http", Some(p)),
        (true, None, Some(p)) => ("http", Some(p)),
        (true, None, None) if is_localhost => ("http", None),
        _ => ("https", None),
    };
    let authority = match port {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    let url =
        Url::parse(&format!("{scheme}://{authority}{DID_WEB_PATH}")).map_err(|_| invalid())?;
    if url.host_str() != Some(host) {
        return Err(invalid());
    }
    Ok(url)
}

/// The `/.well-known/atproto-did` URL of `handle`: `https://<handle>/…`, or plain `http` on
/// [`ResolverConfig::dev_http_port`] in dev mode.
pub(crate) fn handle_url(handle: &Handle, config: &ResolverConfig) -> Result<Url, FetchError> {
    let host = handle.as_str().to_ascii_lowercase();
    let url = match config.dev_http_port.filter(|_| dev(config)) {
        Some(port) => format!("http://{host}:{port}{WELL_KNOWN_PATH}"),
        None => format!("https://{host}{WELL_KNOWN_PATH}"),
    };
    Url::parse(&url).map_err(|e| FetchError::InvalidUrl {
        url,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(did: &str, config: &ResolverConfig) -> Result<String, DidWebError> {
        did_web_url(&did.parse().unwrap(), config).map(|u| u.to_string())
    }

    #[test]
    fn did_web_urls() {
        let prod = ResolverConfig::default();
        assert_eq!(
            url("did:web:example.com", &prod).unwrap(),
            "https://example.com/.well-known/did.json"
        );
        assert_eq!(
            url("did:web:Example.COM", &prod).unwrap(),
            "https://example.com/.well-known/did.json"
        );
        assert_eq!(url("did:plc:abc", &prod), Err(DidWebError::NotWeb));
        assert_eq!(
            url("did:web:example.com:user:alice", &prod),
            Err(DidWebError::PathNotSupported)
        );
        assert_eq!(
            url("did:web:localhost%3A2583", &prod),
            Err(DidWebError::PortNotAllowed)
        );
        for bad in [
            "did:web:exa%2Fmple.com",
            "did:web:example.com%3Axyz",
            "did:web:example.com%3A99999",
            "did:web:a..b",
            "did:web:ex_ample.com",
            "did:web:example.com%3A80%3A81",
        ] {
            assert!(
                matches!(url(bad, &prod), Err(DidWebError::InvalidHost { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn did_web_urls_in_dev_mode() {
        let dev = ResolverConfig {
            allow_private_addresses: true,
            ..ResolverConfig::default()
        };
        assert_eq!(
            url("did:web:localhost%3A2583", &dev).unwrap(),
            "http://localhost:2583/.well-known/did.json"
        );
        assert_eq!(
            url("did:web:localhost", &dev).unwrap(),
            "http://localhost/.well-known/did.json"
        );
        assert_eq!(
            url("did:web:example.com", &dev).unwrap(),
            "https://example.com/.well-known/did.json"
        );
        let dev_port = ResolverConfig {
            dev_http_port: Some(8080),
            ..dev
        };
        assert_eq!(
            url("did:web:example.com", &dev_port).unwrap(),
            "http://example.com:8080/.well-known/did.json"
        );
        // The dev port is ignored outside dev mode.
        let prod_port = ResolverConfig {
            dev_http_port: Some(8080),
            ..ResolverConfig::default()
        };
        assert_eq!(
            url("did:web:example.com", &prod_port).unwrap(),
            "https://example.com/.well-known/did.json"
        );
    }

    #[test]
    fn handle_urls_and_reserved_tlds() {
        let handle: Handle = "Alice.Example.com".parse().unwrap();
        let prod = ResolverConfig {
            dev_http_port: Some(9),
            ..ResolverConfig::default()
        };
        assert_eq!(
            handle_url(&handle, &prod).unwrap().as_str(),
            "https://alice.example.com/.well-known/atproto-did"
        );
        let dev = ResolverConfig {
            allow_private_addresses: true,
            ..prod
        };
        assert_eq!(
            handle_url(&handle, &dev).unwrap().as_str(),
            "http://alice.example.com:9/.well-known/atproto-did"
        );
        for (h, reserved) in [
            ("alice.test", false),
            ("alice.com", false),
            ("laptop.local", true),
            ("x.ARPA", true),
            ("handle.invalid", true),
            ("a.localhost", true),
            ("onion.com", false),
        ] {
            assert_eq!(handle_tld_is_reserved(&h.parse().unwrap()), reserved, "{h}");
        }
    }
}
