//! The HTTP layer: reqwest clients with timeouts, a capped body reader, and, for untrusted URLs,
//! the SSRF guard (URL check, DNS-side address check, redirect policy).

use std::error::Error as StdError;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{Response, Url, redirect};

use super::dns::AddrLookup;
use super::ssrf::{check_url, is_forbidden};
use super::{Limits, MAX_REDIRECTS};

/// Why an HTTP fetch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The HTTP client could not be set up (TLS roots, configuration).
    #[error("cannot set up the HTTP client: {reason}")]
    Client {
        /// The client builder's message.
        reason: String,
    },
    /// The URL could not be built or parsed.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Not `https` (plain `http` only in dev mode), for the URL or a redirect target.
    #[error("refusing non-https URL {url}")]
    InsecureScheme {
        /// The URL.
        url: String,
    },
    /// The host is, or resolves to, an address untrusted fetches may not reach.
    #[error("refusing to connect to {host}: {addr} is not a public address")]
    ForbiddenAddress {
        /// The host as written in the URL.
        host: String,
        /// The offending address.
        addr: IpAddr,
    },
    /// The host name does not exist or has no addresses.
    #[error("host {host} has no addresses")]
    NoAddresses {
        /// The host.
        host: String,
    },
    /// DNS failed for the host.
    #[error("DNS lookup of {host} failed: {reason}")]
    Dns {
        /// The host.
        host: String,
        /// The resolver's message.
        reason: String,
    },
    /// More redirects than [`MAX_REDIRECTS`].
    #[error("too many redirects fetching {url}")]
    TooManyRedirects {
        /// The URL that would have been followed next.
        url: String,
    },
    /// The connect or total timeout expired.
    #[error("timed out fetching {url}")]
    Timeout {
        /// The URL.
        url: String,
    },
    /// Connecting or transferring failed (refused, reset, TLS).
    #[error("fetching {url} failed: {reason}")]
    Network {
        /// The URL.
        url: String,
        /// The transport's message.
        reason: String,
    },
    /// The server answered with a non-success status.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
        /// The start of the body (at most 1 KiB, lossy UTF-8), for error messages.
        body: String,
    },
    /// The body is larger than allowed.
    #[error("response from {url} exceeds {limit} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The cap, in bytes.
        limit: usize,
    },
}

/// How much of an error body is kept for messages.
const ERROR_BODY_LIMIT: usize = 1024;

/// A reqwest client plus the policy it was built with.
#[derive(Debug, Clone)]
pub(crate) struct Fetcher {
    client: reqwest::Client,
    /// `None` for a trusted fetcher; `Some(dev)` for an untrusted one.
    guarded: Option<bool>,
}

/// Resolves names through an [`AddrLookup`] and refuses any forbidden address.
struct GuardedDns {
    lookup: Arc<dyn AddrLookup>,
    allow_private: bool,
}

impl Resolve for GuardedDns {
    fn resolve(&self, name: Name) -> Resolving {
        let lookup = Arc::clone(&self.lookup);
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let ips = lookup.addrs(&host).await.map_err(|e| {
                boxed(FetchError::Dns {
                    host: host.clone(),
                    reason: e.to_string(),
                })
            })?;
            if ips.is_empty() {
                return Err(boxed(FetchError::NoAddresses { host }));
            }
            if let Some(&addr) = ips.iter().find(|ip| !allow_private && is_forbidden(**ip)) {
                return Err(boxed(FetchError::ForbiddenAddress { host, addr }));
            }
            let addrs: Addrs = Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

fn boxed(e: FetchError) -> Box<dyn StdError + Send + Sync> {
    Box::new(e)
}

fn redirect_policy(dev: bool) -> redirect::Policy {
    redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            let url = attempt.url().to_string();
            return attempt.error(FetchError::TooManyRedirects { url });
        }
        match check_url(attempt.url(), dev) {
            Ok(()) => attempt.follow(),
            Err(e) => attempt.error(e),
        }
    })
}

fn base_builder(limits: &Limits, user_agent: &str) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(limits.connect_timeout)
        .timeout(limits.request_timeout)
        .user_agent(user_agent)
}

fn build_error(e: &reqwest::Error) -> FetchError {
    FetchError::Client {
        reason: error_chain(e),
    }
}

impl Fetcher {
    /// A client for configured, trusted URLs (the PLC directory): any scheme and address, no
    /// redirects.
    pub(crate) fn trusted(limits: &Limits, user_agent: &str) -> Result<Fetcher, FetchError> {
        let client = base_builder(limits, user_agent)
            .redirect(redirect::Policy::none())
            .build()
            .map_err(|e| build_error(&e))?;
        Ok(Fetcher {
            client,
            guarded: None,
        })
    }

    /// A client for URLs taken from DIDs and handles: https only and public addresses only,
    /// unless `dev`.
    pub(crate) fn guarded(
        limits: &Limits,
        user_agent: &str,
        lookup: Arc<dyn AddrLookup>,
        dev: bool,
    ) -> Result<Fetcher, FetchError> {
        let dns = GuardedDns {
            lookup,
            allow_private: dev,
        };
        let client = base_builder(limits, user_agent)
            .https_only(!dev)
            .redirect(redirect_policy(dev))
            .dns_resolver(Arc::new(dns))
            .build()
            .map_err(|e| build_error(&e))?;
        Ok(Fetcher {
            client,
            guarded: Some(dev),
        })
    }

    /// GETs `url` and returns the body (at most `limit` bytes) of a 2xx answer.
    pub(crate) async fn get(&self, url: &Url, limit: usize) -> Result<Vec<u8>, FetchError> {
        self.check(url)?;
        let response = self
            .client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json, */*;q=0.5")
            .send()
            .await
            .map_err(|e| from_reqwest(url, &e))?;
        success_body(url, response, limit).await
    }

    /// POSTs `body` as JSON to `url` and returns the body (at most `limit` bytes) of a 2xx answer.
    pub(crate) async fn post_json(
        &self,
        url: &Url,
        body: &serde_json::Value,
        limit: usize,
    ) -> Result<Vec<u8>, FetchError> {
        self.check(url)?;
        let response = self
            .client
            .post(url.clone())
            .json(body)
            .send()
            .await
            .map_err(|e| from_reqwest(url, &e))?;
        success_body(url, response, limit).await
    }

    fn check(&self, url: &Url) -> Result<(), FetchError> {
        match self.guarded {
            Some(dev) => check_url(url, dev),
            None => Ok(()),
        }
    }
}

async fn success_body(url: &Url, response: Response, limit: usize) -> Result<Vec<u8>, FetchError> {
    let status = response.status();
    if status.is_success() {
        return read_capped(url, response, limit).await;
    }
    // Keep the start of the body for the message; ignore failures reading it.
    let body = read_prefix(response, ERROR_BODY_LIMIT).await;
    Err(FetchError::Status {
        url: url.to_string(),
        status: status.as_u16(),
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Reads the whole body, refusing it as soon as it would exceed `limit` bytes.
async fn read_capped(
    url: &Url,
    mut response: Response,
    limit: usize,
) -> Result<Vec<u8>, FetchError> {
    let too_large = || FetchError::TooLarge {
        url: url.to_string(),
        limit,
    };
    if response
        .content_length()
        .is_some_and(|len| len > limit as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| from_reqwest(url, &e))? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The first `limit` bytes of the body, or what could be read of them.
async fn read_prefix(mut response: Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let take = chunk.len().min(limit - body.len());
                body.extend_from_slice(chunk.get(..take).unwrap_or_default());
            }
            Ok(None) | Err(_) => break,
        }
    }
    body
}

/// Maps a reqwest error, surfacing our own errors (from the DNS guard or the redirect policy)
/// found in its source chain.
fn from_reqwest(url: &Url, err: &reqwest::Error) -> FetchError {
    let mut source: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(ours) = e.downcast_ref::<FetchError>() {
            return ours.clone();
        }
        source = e.source();
    }
    let url = err.url().unwrap_or(url).to_string();
    if err.is_timeout() {
        return FetchError::Timeout { url };
    }
    FetchError::Network {
        url,
        reason: error_chain(err),
    }
}

/// `err: cause: cause`, for messages.
fn error_chain(err: &dyn StdError) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = e.source();
    }
    out
}
