//! Outbound HTTP for the proxy: the clients, the header allowlists, and the way upstream answers
//! come back (streamed successes, re-encoded errors).
//!
//! Two clients, chosen by where the URL came from ([`Trust`]):
//! - `configured` (the app view, the report service: the operator wrote these URLs): any scheme
//!   and address;
//! - `from_document` (a service endpoint in a DID document, which anybody can write): `https`
//!   only, no literal IP or DNS answer that is private, loopback, link-local and so on
//!   (`atp_identity::resolve::ssrf::is_forbidden`, the rule the identity resolver uses), checked
//!   on every address a name resolves to. In development mode (`PDS_DEV_MODE`) these checks are
//!   off, so that tests can run services on 127.0.0.1.
//!
//! Neither client follows redirects or uses a system proxy. Limits (the reference's defaults):
//! 10 s until the response headers, 30 s of silence while reading a body, 10 MiB of response
//! body; request bodies are capped by the caller.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{Client, Url};

use crate::api::error::XrpcError;
use crate::config::Config;

/// Time allowed until the upstream's response headers arrive.
pub const HEADERS_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest silence allowed while reading an upstream body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed to connect.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest upstream response body relayed, in bytes.
pub const MAX_RESPONSE_BYTES: u64 = 10 * 1024 * 1024;

/// Response headers relayed besides the content headers (the reference's list).
const FORWARDED_RESPONSE_HEADERS: [&str; 3] = [
    "atproto-repo-rev",
    "atproto-content-labelers",
    "retry-after",
];
/// Content headers relayed with a successful body.
const CONTENT_HEADERS: [&str; 4] = [
    "content-length",
    "content-encoding",
    "content-type",
    "content-language",
];

/// Where an upstream URL came from, which decides the SSRF rules applied to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// Written by the operator (`PDS_BSKY_APP_VIEW_URL`, `PDS_REPORT_SERVICE_URL`).
    Configured,
    /// Taken from a DID document.
    FromDocument,
}

/// The proxy's HTTP clients.
#[derive(Debug, Clone)]
pub struct Upstream {
    clients: Result<(Client, Client), String>,
    dev: bool,
}

/// Why an upstream could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The URL breaks the SSRF rules.
    #[error("refusing to reach {url}: {reason}")]
    Forbidden {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Connecting or sending failed, or the headers did not come in time.
    #[error("upstream request to {url} failed: {reason}")]
    Request {
        /// The URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The response body is larger than allowed.
    #[error("upstream response too large")]
    TooLarge,
    /// The clients could not be built at start-up.
    #[error("the proxy's HTTP client is unavailable: {0}")]
    NoClient(String),
}

impl From<UpstreamError> for XrpcError {
    fn from(e: UpstreamError) -> XrpcError {
        match e {
            UpstreamError::TooLarge => upstream_failure("upstream response too large"),
            UpstreamError::NoClient(_) => XrpcError::internal(e),
            other => {
                tracing::warn!(error = %other, "upstream service unreachable");
                upstream_failure("Upstream service unreachable")
            }
        }
    }
}

/// 502 `UpstreamFailure`.
pub fn upstream_failure(message: &str) -> XrpcError {
    XrpcError::new(StatusCode::BAD_GATEWAY, "UpstreamFailure", message)
}

/// Resolves names with the system resolver and refuses any answer holding a forbidden address.
struct GuardedDns;

impl Resolve for GuardedDns {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.is_empty() {
                return Err(format!("{host} has no addresses").into());
            }
            if let Some(bad) = addrs.iter().find(|a| forbidden(a.ip())) {
                return Err(format!("{host} resolves to {} (not public)", bad.ip()).into());
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

fn forbidden(ip: IpAddr) -> bool {
    atp_identity::resolve::ssrf::is_forbidden(ip)
}

fn build_clients(dev: bool) -> Result<(Client, Client), reqwest::Error> {
    let base = || {
        Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(BODY_TIMEOUT)
            .user_agent(concat!("pds/", env!("CARGO_PKG_VERSION")))
    };
    let configured = base().build()?;
    let from_document = if dev {
        configured.clone()
    } else {
        base()
            .https_only(true)
            .dns_resolver(Arc::new(GuardedDns))
            .build()?
    };
    Ok((configured, from_document))
}

impl Upstream {
    /// The clients for this configuration (SSRF checks off in development mode).
    pub fn new(config: &Config) -> Upstream {
        let clients = build_clients(config.dev_mode).map_err(|e| e.to_string());
        if let Err(e) = &clients {
            tracing::error!(error = %e, "the proxy's HTTP client could not be built");
        }
        Upstream {
            clients,
            dev: config.dev_mode,
        }
    }

    /// Checks a URL's scheme and literal address against the rules for `trust`.
    pub fn check_url(&self, url: &Url, trust: Trust) -> Result<(), UpstreamError> {
        let refuse = |reason: &str| UpstreamError::Forbidden {
            url: url.to_string(),
            reason: reason.to_owned(),
        };
        if !matches!(url.scheme(), "http" | "https") {
            return Err(refuse("not an http(s) URL"));
        }
        if trust == Trust::Configured || self.dev {
            return Ok(());
        }
        if url.scheme() != "https" {
            return Err(refuse("plain http"));
        }
        let host = url.host_str().unwrap_or("");
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        match bare.parse::<IpAddr>() {
            Ok(ip) if forbidden(ip) => Err(refuse("the address is not public")),
            _ => Ok(()),
        }
    }

    /// Sends a request and waits (at most [`HEADERS_TIMEOUT`]) for the response headers.
    pub async fn send(
        &self,
        method: reqwest::Method,
        url: Url,
        trust: Trust,
        headers: HeaderMap,
        body: Option<reqwest::Body>,
    ) -> Result<reqwest::Response, UpstreamError> {
        self.check_url(&url, trust)?;
        let (configured, from_document) = self
            .clients
            .as_ref()
            .map_err(|e| UpstreamError::NoClient(e.clone()))?;
        let client = match trust {
            Trust::Configured => configured,
            Trust::FromDocument => from_document,
        };
        let mut request = client.request(method, url.clone()).headers(headers);
        if let Some(body) = body {
            request = request.body(body);
        }
        let failed = |reason: String| UpstreamError::Request {
            url: url.to_string(),
            reason,
        };
        match tokio::time::timeout(HEADERS_TIMEOUT, request.send()).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(failed(error_chain(&e))),
            Err(_) => Err(failed("no response headers in time".to_owned())),
        }
    }
}

/// An error with its sources, for logs.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The request headers forwarded upstream (the reference's allowlist): `accept-encoding`
/// (`identity` if absent), `accept-language`, `atproto-accept-labelers`, every `x-atproto-*`,
/// `x-bsky-topics`, and for requests with a body `content-type`, `content-encoding` and
/// `content-length`.
pub fn forwarded_request_headers(incoming: &HeaderMap, with_body: bool) -> HeaderMap {
    let mut out = HeaderMap::new();
    let identity = HeaderValue::from_static("identity");
    let encoding = incoming.get("accept-encoding").unwrap_or(&identity);
    out.insert("accept-encoding", encoding.clone());
    let mut copy = |name: &str| {
        for value in incoming.get_all(name) {
            if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
                out.append(name, value.clone());
            }
        }
    };
    for name in [
        "accept-language",
        "atproto-accept-labelers",
        "x-bsky-topics",
    ] {
        copy(name);
    }
    for name in incoming.keys() {
        if name.as_str().starts_with("x-atproto-") {
            copy(name.as_str());
        }
    }
    if with_body {
        for name in ["content-type", "content-encoding", "content-length"] {
            copy(name);
        }
    }
    out
}

/// The upstream response headers relayed downstream: the content headers (when `content`)
/// and [`FORWARDED_RESPONSE_HEADERS`].
pub fn relayed_response_headers(upstream: &HeaderMap, content: bool) -> HeaderMap {
    let mut out = HeaderMap::new();
    let names = FORWARDED_RESPONSE_HEADERS
        .iter()
        .chain(CONTENT_HEADERS.iter().filter(|_| content));
    for name in names {
        let values: Vec<&HeaderValue> = upstream.get_all(*name).iter().collect();
        let value = match values.as_slice() {
            [] => continue,
            [one] => (*one).clone(),
            many => {
                let joined: Vec<&[u8]> = many.iter().map(|v| v.as_bytes()).collect();
                match HeaderValue::from_bytes(&joined.join(&b","[..])) {
                    Ok(v) => v,
                    Err(_) => continue,
                }
            }
        };
        out.insert(HeaderName::from_static(name), value);
    }
    out
}

/// Whether a content type is JSON (`application/json`, `application/*+json`); `None` when absent.
pub fn is_json_content_type(headers: &HeaderMap) -> Option<bool> {
    let value = headers
        .get("content-type")?
        .to_str()
        .ok()?
        .to_ascii_lowercase();
    let essence = value.split(';').next().unwrap_or("").trim();
    Some(
        essence == "application/json"
            || essence
                .strip_prefix("application/")
                .is_some_and(|sub| sub.ends_with("+json")),
    )
}

/// Relays a successful upstream response: its status, the allowed headers, and the body as a
/// stream capped at [`MAX_RESPONSE_BYTES`] (a longer body is cut off, which the client sees as
/// a broken response).
pub fn stream_response(upstream: reqwest::Response) -> Response {
    if upstream
        .content_length()
        .is_some_and(|n| n > MAX_RESPONSE_BYTES)
    {
        return XrpcError::from(UpstreamError::TooLarge).into_response();
    }
    let status = upstream.status();
    let headers = relayed_response_headers(upstream.headers(), true);
    let mut seen: u64 = 0;
    let body = upstream.bytes_stream().map(move |chunk| {
        let chunk = chunk.map_err(|e| std::io::Error::other(error_chain(&e)))?;
        seen = seen.saturating_add(chunk.len() as u64);
        if seen > MAX_RESPONSE_BYTES {
            return Err(std::io::Error::other("upstream response too large"));
        }
        Ok::<Bytes, std::io::Error>(chunk)
    });
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// Reads a whole upstream body, at most `limit` bytes.
pub async fn read_capped(upstream: reqwest::Response, limit: u64) -> Result<Bytes, UpstreamError> {
    if upstream.content_length().is_some_and(|n| n > limit) {
        return Err(UpstreamError::TooLarge);
    }
    let url = upstream.url().to_string();
    let mut body = Vec::new();
    let mut stream = upstream.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| UpstreamError::Request {
            url: url.clone(),
            reason: error_chain(&e),
        })?;
        if (body.len() as u64).saturating_add(chunk.len() as u64) > limit {
            return Err(UpstreamError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

/// An upstream's error answer, decoded as the reference does (`error` and `message` from a JSON
/// body, when there is one).
#[derive(Debug, Clone)]
pub struct UpstreamFailure {
    /// The upstream status.
    pub status: StatusCode,
    /// Its `error` name, if any.
    pub error: Option<String>,
    /// Its `message`, if any.
    pub message: Option<String>,
    /// The relayed headers (`atproto-repo-rev`, `atproto-content-labelers`, `retry-after`).
    pub headers: HeaderMap,
}

impl UpstreamFailure {
    /// Reads the error body of an upstream answer with status 400 or more.
    pub async fn read(upstream: reqwest::Response) -> UpstreamFailure {
        let status = upstream.status();
        let headers = relayed_response_headers(upstream.headers(), false);
        let json = is_json_content_type(upstream.headers()) != Some(false);
        let body = if json {
            read_capped(upstream, MAX_RESPONSE_BYTES).await.ok()
        } else {
            None
        };
        let parsed: Option<serde_json::Value> = body.and_then(|b| serde_json::from_slice(&b).ok());
        let field = |name: &str| {
            parsed
                .as_ref()
                .and_then(|v| v.get(name))
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        UpstreamFailure {
            status,
            error: field("error"),
            message: field("message"),
            headers,
        }
    }
}

/// The XRPC name and default message of a status (the reference's `ResponseType`).
fn response_type(status: u16) -> Option<(&'static str, &'static str)> {
    Some(match status {
        400 => ("InvalidRequest", "Invalid Request"),
        401 => ("AuthenticationRequired", "Authentication Required"),
        403 => ("Forbidden", "Forbidden"),
        404 => ("XRPCNotSupported", "XRPC Not Supported"),
        406 => ("NotAcceptable", "Not Acceptable"),
        413 => ("PayloadTooLarge", "Payload Too Large"),
        415 => ("UnsupportedMediaType", "Unsupported Media Type"),
        429 => ("RateLimitExceeded", "Rate Limit Exceeded"),
        500 => ("InternalServerError", "Internal Server Error"),
        501 => ("MethodNotImplemented", "Method Not Implemented"),
        502 => ("UpstreamFailure", "Upstream Failure"),
        503 => ("NotEnoughResources", "Not Enough Resources"),
        504 => ("UpstreamTimeout", "Upstream Timeout"),
        _ => return None,
    })
}

impl IntoResponse for UpstreamFailure {
    /// The upstream's error as it was (a 500 becomes `502 UpstreamFailure`), with its error
    /// name and message, or the status's defaults.
    fn into_response(self) -> Response {
        let status = if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            StatusCode::BAD_GATEWAY
        } else {
            self.status
        };
        let defaults = response_type(status.as_u16());
        let mut body = serde_json::Map::new();
        if let Some(error) = self.error.or(defaults.map(|d| d.0.to_owned())) {
            body.insert("error".into(), error.into());
        }
        let message = self
            .message
            .filter(|m| !m.is_empty())
            .or(defaults.map(|d| d.1.to_owned()));
        if let Some(message) = message {
            body.insert("message".into(), message.into());
        }
        let mut response = (status, axum::Json(serde_json::Value::Object(body))).into_response();
        response.headers_mut().extend(self.headers);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn only_allowlisted_request_headers_go_upstream() {
        let incoming = headers(&[
            ("authorization", "Bearer secret"),
            ("cookie", "a=b"),
            ("accept-language", "fr"),
            ("atproto-accept-labelers", "did:plc:x;redact"),
            ("x-atproto-foo", "1"),
            ("x-bsky-topics", "t"),
            ("content-type", "application/json"),
            ("host", "pds.example"),
        ]);
        let out = forwarded_request_headers(&incoming, false);
        assert!(out.get("authorization").is_none());
        assert!(out.get("cookie").is_none());
        assert!(out.get("host").is_none());
        assert!(out.get("content-type").is_none());
        assert_eq!(out["accept-encoding"], "identity");
        assert_eq!(out["accept-language"], "fr");
        assert_eq!(out["atproto-accept-labelers"], "did:plc:x;redact");
        assert_eq!(out["x-atproto-foo"], "1");
        assert_eq!(out["x-bsky-topics"], "t");
        let out = forwarded_request_headers(&incoming, true);
        assert_eq!(out["content-type"], "application/json");
    }

    #[test]
    fn only_allowlisted_response_headers_come_back() {
        let upstream = headers(&[
            ("content-type", "application/json"),
            ("set-cookie", "x=y"),
            ("atproto-repo-rev", "3k"),
            ("atproto-content-labelers", "a"),
            ("atproto-content-labelers", "b"),
            ("server", "upstream"),
        ]);
        let out = relayed_response_headers(&upstream, true);
        assert_eq!(out.len(), 3);
        assert_eq!(out["atproto-content-labelers"], "a,b");
        let out = relayed_response_headers(&upstream, false);
        assert!(out.get("content-type").is_none());
        assert_eq!(out["atproto-repo-rev"], "3k");
    }

    #[test]
    fn json_content_types() {
        let check = |v: &str| is_json_content_type(&headers(&[("content-type", v)]));
        assert_eq!(check("application/json; charset=utf-8"), Some(true));
        assert_eq!(check("application/vnd.ipld+json"), Some(true));
        assert_eq!(check("text/html"), Some(false));
        assert_eq!(is_json_content_type(&HeaderMap::new()), None);
    }

    #[test]
    fn document_urls_must_be_public_https_unless_dev() {
        let config = |dev: bool| {
            let mut vars = vec![("PDS_HOSTNAME".to_owned(), "pds.example.com".to_owned())];
            vars.push(("PDS_DEV_MODE".to_owned(), dev.to_string()));
            Config::from_vars(vars).unwrap().0
        };
        let prod = Upstream::new(&config(false));
        let dev = Upstream::new(&config(true));
        let url = |s: &str| Url::parse(s).unwrap();
        let doc = Trust::FromDocument;
        assert!(
            prod.check_url(&url("https://chat.example.com"), doc)
                .is_ok()
        );
        for bad in [
            "http://chat.example.com",
            "https://127.0.0.1:8080",
            "https://[::1]/",
            "https://169.254.169.254/",
            "https://10.0.0.1/",
            "ftp://chat.example.com",
        ] {
            assert!(prod.check_url(&url(bad), doc).is_err(), "{bad}");
        }
        assert!(dev.check_url(&url("http://127.0.0.1:8080"), doc).is_ok());
        let configured = Trust::Configured;
        assert!(
            prod.check_url(&url("http://127.0.0.1:8080"), configured)
                .is_ok()
        );
    }

    #[test]
    fn upstream_errors_keep_their_names_and_500_becomes_502() {
        let failure = |status: u16, error: Option<&str>, message: Option<&str>| UpstreamFailure {
            status: StatusCode::from_u16(status).unwrap(),
            error: error.map(str::to_owned),
            message: message.map(str::to_owned),
            headers: headers(&[("atproto-repo-rev", "3k")]),
        };
        let r = failure(400, Some("NotFound"), Some("no post")).into_response();
        assert_eq!(r.status(), 400);
        assert_eq!(r.headers()["atproto-repo-rev"], "3k");
        let r = failure(500, None, None).into_response();
        assert_eq!(r.status(), 502);
    }
}
