//! [`XrpcClient`]: queries, procedures, streamed uploads and downloads.

use std::fmt;
use std::pin::Pin;
use std::time::Duration;

use atp_syntax::Nsid;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Body, Method, RequestBuilder, Response, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{XrpcError, params};

/// Default cap on a buffered JSON response body: 16 MiB.
pub const DEFAULT_MAX_JSON_BYTES: usize = 16 * 1024 * 1024;

/// Default total timeout for JSON queries and procedures: 30 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Cap on an error body read from a failed call (the `{"error", "message"}` object).
const MAX_ERROR_BYTES: usize = 64 * 1024;

/// A streamed response body, as returned by [`XrpcClient::query_stream`].
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, XrpcError>> + Send>>;

/// A client for one XRPC host (a PDS, the PLC-adjacent services, an AppView, a relay).
///
/// Cheap to clone (the connection pool is shared). Configuration methods consume and return the
/// client, so a per-call header is `client.clone().with_header("atproto-proxy", …)?.query(…)`.
#[derive(Clone)]
pub struct XrpcClient {
    http: reqwest::Client,
    base: Url,
    headers: HeaderMap,
    max_json_bytes: usize,
    timeout: Option<Duration>,
    stream_timeout: Option<Duration>,
}

impl fmt::Debug for XrpcClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values may hold credentials: print names only.
        let names: Vec<&str> = self.headers.keys().map(HeaderName::as_str).collect();
        f.debug_struct("XrpcClient")
            .field("base", &self.base.as_str())
            .field("headers", &names)
            .field("max_json_bytes", &self.max_json_bytes)
            .field("timeout", &self.timeout)
            .field("stream_timeout", &self.stream_timeout)
            .finish_non_exhaustive()
    }
}

impl XrpcClient {
    /// A client for the host at `base_url` (e.g. `https://pds.example.com`; a path prefix is
    /// kept), with its own connection pool: 10 s connect timeout, 60 s read timeout, 30 s total
    /// timeout for JSON calls, no total timeout for streamed calls.
    pub fn new(base_url: &str) -> Result<Self, XrpcError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .build()?;
        Self::with_client(base_url, http)
    }

    /// A client for `base_url` using an existing `reqwest::Client` (its timeouts, TLS and
    /// redirect policy apply).
    pub fn with_client(base_url: &str, http: reqwest::Client) -> Result<Self, XrpcError> {
        let invalid = |reason: &str| XrpcError::InvalidUrl {
            url: base_url.to_owned(),
            reason: reason.to_owned(),
        };
        let base = Url::parse(base_url).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https"));
        }
        if base.cannot_be_a_base() || base.host().is_none() {
            return Err(invalid("no host"));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(invalid("a base URL has no query or fragment"));
        }
        Ok(XrpcClient {
            http,
            base,
            headers: HeaderMap::new(),
            max_json_bytes: DEFAULT_MAX_JSON_BYTES,
            timeout: Some(DEFAULT_TIMEOUT),
            stream_timeout: None,
        })
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// Sends `Authorization: Bearer <token>` on every call (replacing earlier credentials).
    pub fn with_bearer(self, token: &str) -> Result<Self, XrpcError> {
        self.with_sensitive(AUTHORIZATION, &format!("Bearer {token}"))
    }

    /// Sends HTTP basic credentials on every call (replacing earlier credentials), as the
    /// reference PDS's admin endpoints expect (`admin` and the admin password).
    pub fn with_basic(self, user: &str, password: &str) -> Result<Self, XrpcError> {
        let encoded = base64_encode(format!("{user}:{password}").as_bytes());
        self.with_sensitive(AUTHORIZATION, &format!("Basic {encoded}"))
    }

    /// Sends the header `name: value` on every call (replacing an earlier value of `name`),
    /// e.g. `atproto-proxy: did:web:api.bsky.app#bsky_appview`.
    pub fn with_header(mut self, name: &str, value: &str) -> Result<Self, XrpcError> {
        let bad = || XrpcError::InvalidHeader {
            name: name.to_owned(),
        };
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
        let value = HeaderValue::from_str(value).map_err(|_| bad())?;
        self.headers.insert(name, value);
        Ok(self)
    }

    /// Removes the header `name` (or the credentials, for `authorization`); unknown: no-op.
    pub fn without_header(mut self, name: &str) -> Self {
        self.headers.remove(name);
        self
    }

    /// Caps buffered JSON response bodies at `limit` bytes; larger ones fail with
    /// [`XrpcError::TooLarge`]. Streamed downloads are not capped.
    pub fn with_max_json_bytes(mut self, limit: usize) -> Self {
        self.max_json_bytes = limit;
        self
    }

    /// Total timeout of a JSON query or procedure, from sending to the end of the body;
    /// `None`: only the underlying client's timeouts apply.
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// Total timeout of a streamed upload or download (default `None`, since a repository
    /// export may legitimately take long; the read timeout still catches a stalled peer).
    pub fn with_stream_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.stream_timeout = timeout;
        self
    }

    /// Calls the query `nsid` (`GET`) with `params` (a struct or map of scalars and arrays of
    /// scalars; `None` fields are omitted) and decodes the JSON output.
    pub async fn query<P, O>(&self, nsid: &Nsid, params: &P) -> Result<O, XrpcError>
    where
        P: Serialize + ?Sized,
        O: DeserializeOwned,
    {
        let request = self.request(Method::GET, nsid, params, self.timeout)?;
        self.json_response(request).await
    }

    /// Calls the procedure `nsid` (`POST`) with the JSON body `input` and decodes the JSON
    /// output. An empty response body decodes as JSON `null` (so `O = ()` or `Option<_>` fits
    /// procedures without output).
    pub async fn procedure<I, O>(&self, nsid: &Nsid, input: &I) -> Result<O, XrpcError>
    where
        I: Serialize + ?Sized,
        O: DeserializeOwned,
    {
        let body = serde_json::to_vec(input).map_err(XrpcError::Decode)?;
        let request = self
            .request(Method::POST, nsid, &(), self.timeout)?
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        self.json_response(request).await
    }

    /// Calls the procedure `nsid` (`POST`) with a raw body of type `content_type` (a blob, a
    /// CAR) and decodes the JSON output as [`XrpcClient::procedure`] does. The body is streamed
    /// when it is one: `Body::wrap_stream(stream_of_bytes)`; `Vec<u8>`, `Bytes` and `String`
    /// convert too.
    pub async fn procedure_bytes<O>(
        &self,
        nsid: &Nsid,
        content_type: &str,
        body: impl Into<Body>,
    ) -> Result<O, XrpcError>
    where
        O: DeserializeOwned,
    {
        let content_type =
            HeaderValue::from_str(content_type).map_err(|_| XrpcError::InvalidHeader {
                name: CONTENT_TYPE.as_str().to_owned(),
            })?;
        let request = self
            .request(Method::POST, nsid, &(), self.stream_timeout)?
            .header(CONTENT_TYPE, content_type)
            .body(body);
        self.json_response(request).await
    }

    /// Calls the query `nsid` (`GET`, e.g. `com.atproto.sync.getRepo` or `getBlob`) and
    /// returns the response headers and the body as a stream of chunks, without buffering it.
    /// A non-2xx status is an [`XrpcError::Response`] before any chunk is returned.
    pub async fn query_stream<P>(
        &self,
        nsid: &Nsid,
        params: &P,
    ) -> Result<(HeaderMap, ByteStream), XrpcError>
    where
        P: Serialize + ?Sized,
    {
        let request = self.request(Method::GET, nsid, params, self.stream_timeout)?;
        let response = check_status(request.send().await?).await?;
        let headers = response.headers().clone();
        let stream = response
            .bytes_stream()
            .map(|chunk| chunk.map_err(XrpcError::Transport));
        Ok((headers, Box::pin(stream)))
    }

    fn with_sensitive(mut self, name: HeaderName, value: &str) -> Result<Self, XrpcError> {
        let mut value = HeaderValue::from_str(value).map_err(|_| XrpcError::InvalidHeader {
            name: name.as_str().to_owned(),
        })?;
        value.set_sensitive(true);
        self.headers.insert(name, value);
        Ok(self)
    }

    fn request<P: Serialize + ?Sized>(
        &self,
        method: Method,
        nsid: &Nsid,
        params: &P,
        timeout: Option<Duration>,
    ) -> Result<RequestBuilder, XrpcError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| XrpcError::InvalidUrl {
                url: self.base.to_string(),
                reason: "cannot be a base".to_owned(),
            })?
            .pop_if_empty()
            .push("xrpc")
            .push(nsid.as_str());
        let pairs = params::encode(params)?;
        if !pairs.is_empty() {
            url.query_pairs_mut().extend_pairs(pairs);
        }
        let mut request = self.http.request(method, url).headers(self.headers.clone());
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        Ok(request)
    }

    async fn json_response<O: DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<O, XrpcError> {
        let response = check_status(request.send().await?).await?;
        let body = read_capped(response, self.max_json_bytes).await?;
        let body: &[u8] = if body.is_empty() { b"null" } else { &body };
        serde_json::from_slice(body).map_err(XrpcError::Decode)
    }
}

/// Passes a 2xx response through; turns any other into [`XrpcError::Response`].
async fn check_status(response: Response) -> Result<Response, XrpcError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: Option<String>,
        message: Option<String>,
    }
    // A body that is too large, unreadable or not the error object leaves both fields empty.
    let parsed = match read_capped(response, MAX_ERROR_BYTES).await {
        Ok(body) => serde_json::from_slice::<ErrorBody>(&body).ok(),
        Err(_) => None,
    };
    let (error, message) = parsed.map_or((None, None), |b| (b.error, b.message));
    Err(XrpcError::Response {
        status,
        error,
        message,
    })
}

/// Reads the whole body, failing as soon as it exceeds `limit` bytes.
async fn read_capped(mut response: Response, limit: usize) -> Result<Vec<u8>, XrpcError> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(XrpcError::TooLarge { limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Err(XrpcError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Standard base64 with padding (RFC 4648 §4), for basic credentials.
fn base64_encode(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, want) in cases {
            assert_eq!(base64_encode(input.as_bytes()), want, "input {input:?}");
        }
    }

    #[test]
    fn base_url_must_be_http() {
        assert!(XrpcClient::new("ftp://x.example").is_err());
        assert!(XrpcClient::new("not a url").is_err());
        assert!(XrpcClient::new("http://x.example/?a=b").is_err());
        assert!(XrpcClient::new("https://x.example/prefix/").is_ok());
    }
}
