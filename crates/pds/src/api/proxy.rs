//! Service proxying: XRPC methods this server does not serve itself are forwarded, on the
//! account's behalf, to the app view or to the service an `atproto-proxy` header names, with a
//! service-auth token signed by the account's key (the reference's `pipethrough.ts`).
//!
//! - Target ([`proxy_target`]): the `atproto-proxy: <did>#<service_id>` header, resolved through
//!   the DID's document (`<did>#bsky_appview` of the configured app view, and
//!   `<did>#atproto_labeler` of the configured report service, go to their configured URLs);
//!   without the header, the method's default service (`createReport`: the report service;
//!   everything else: the app view); with neither, `400 No service configured for <method>`.
//! - Auth: an access token is required (as the reference's `authorization()` verifier:
//!   `401 AuthMissing` without one). The forwarded request carries a fresh token: `iss` = the
//!   account, `aud` = the service's bare DID, `lxm` = the method, 60 s, random `jti`.
//! - Never forwarded: any `com.atproto.*` method we do not serve (`501 MethodNotImplemented`),
//!   the reference's protected methods, and chat methods for non-privileged app passwords
//!   (`400 InvalidToken "Bad token method"`).
//! - Transport: see [`upstream`] (header allowlists, streaming, limits, SSRF rules).
//! - Special methods: `app.bsky.feed.getFeed` (token for the feed generator, [`get_feed`]),
//!   `com.atproto.moderation.createReport` ([`create_report`]), and read-after-write for
//!   getProfile, getAuthorFeed, getPostThread and getTimeline ([`read_after_write`]).

pub mod local_viewer;
pub mod read_after_write;
pub mod upstream;

use atp_identity::Resolver;
use atp_syntax::{AtUri, Did, Nsid};
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use reqwest::Url;

use crate::api::error::XrpcError;
use crate::auth::{AccessAuth, Scope};
use crate::config::{Config, ServiceRef};
use crate::service::method_policy::{PRIVILEGED_METHODS, PROTECTED_METHODS};
use crate::service::service_auth::{PROXY_TOKEN_LIFETIME_SECS, mint};
use crate::state::AppState;
pub use upstream::Upstream;
use upstream::{Trust, UpstreamFailure, forwarded_request_headers, stream_response};

/// Moderation methods whose default service is the moderation service (the reference's
/// `defaultService`); this server has no moderation-service setting, so without an
/// `atproto-proxy` header they answer `No service configured`.
const MOD_SERVICE_METHODS: [&str; 27] = [
    "tools.ozone.communication.createTemplate",
    "tools.ozone.communication.deleteTemplate",
    "tools.ozone.communication.listTemplates",
    "tools.ozone.communication.updateTemplate",
    "tools.ozone.moderation.cancelScheduledActions",
    "tools.ozone.moderation.emitEvent",
    "tools.ozone.moderation.getAccountTimeline",
    "tools.ozone.moderation.getEvent",
    "tools.ozone.moderation.getRecord",
    "tools.ozone.moderation.getRepo",
    "tools.ozone.moderation.listScheduledActions",
    "tools.ozone.moderation.queryEvents",
    "tools.ozone.moderation.queryStatuses",
    "tools.ozone.moderation.scheduleAction",
    "tools.ozone.moderation.searchRepos",
    "tools.ozone.safelink.addRule",
    "tools.ozone.safelink.queryEvents",
    "tools.ozone.safelink.queryRules",
    "tools.ozone.safelink.removeRule",
    "tools.ozone.safelink.updateRule",
    "tools.ozone.team.addMember",
    "tools.ozone.team.deleteMember",
    "tools.ozone.team.listMembers",
    "tools.ozone.team.updateMember",
    "tools.ozone.verification.grantVerifications",
    "tools.ozone.verification.listVerifications",
    "tools.ozone.verification.revokeVerifications",
];

/// Method names compare case-insensitively (the reference's `LxmSet`); the protected and
/// privileged lists are `service::method_policy`'s.
fn listed(list: &[&str], method: &str) -> bool {
    list.iter().any(|m| m.eq_ignore_ascii_case(method))
}

/// A failure of a proxied call: ours, or the upstream's error relayed.
#[derive(Debug)]
pub enum ProxyError {
    /// Refused or failed here.
    Local(XrpcError),
    /// The upstream answered with an error.
    Upstream(UpstreamFailure),
}

impl From<XrpcError> for ProxyError {
    fn from(e: XrpcError) -> ProxyError {
        ProxyError::Local(e)
    }
}

impl From<upstream::UpstreamError> for ProxyError {
    fn from(e: upstream::UpstreamError) -> ProxyError {
        ProxyError::Local(e.into())
    }
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        match self {
            ProxyError::Local(e) => e.into_response(),
            ProxyError::Upstream(e) => e.into_response(),
        }
    }
}

/// `400 InvalidToken "Bad token method"`.
fn bad_token_method() -> XrpcError {
    XrpcError::invalid_token("Bad token method")
}

/// Where a proxied call goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The service's DID: the audience of the token.
    pub did: Did,
    /// The service id (`bsky_appview`, `atproto_labeler`, ...).
    pub service_id: String,
    /// The service's base URL.
    pub url: Url,
    /// Where the URL came from.
    pub trust: Trust,
}

impl Target {
    fn configured(service: &ServiceRef, service_id: &str) -> Result<Target, XrpcError> {
        let did = service.did.parse().map_err(XrpcError::internal)?;
        let url = Url::parse(&service.url).map_err(XrpcError::internal)?;
        Ok(Target {
            did,
            service_id: service_id.to_owned(),
            url,
            trust: Trust::Configured,
        })
    }

    /// The service's origin with this path and query.
    fn url_for(&self, path_and_query: &Uri) -> Url {
        let mut url = self.url.clone();
        url.set_path(path_and_query.path());
        url.set_query(path_and_query.query());
        url
    }
}

/// The default service of a method: its service id and, if configured, where it is.
fn default_service<'c>(config: &'c Config, lxm: &str) -> (&'static str, Option<&'c ServiceRef>) {
    if listed(&MOD_SERVICE_METHODS, lxm) {
        ("atproto_labeler", None)
    } else if lxm.eq_ignore_ascii_case("com.atproto.moderation.createReport") {
        ("atproto_labeler", config.report_service.as_ref())
    } else {
        ("bsky_appview", config.bsky_app_view.as_ref())
    }
}

/// The target of a call to `lxm`: the `atproto-proxy` header's service, else the method's
/// default service.
pub async fn proxy_target(
    state: &AppState,
    headers: &HeaderMap,
    lxm: &str,
) -> Result<Target, XrpcError> {
    if let Some(value) = headers.get("atproto-proxy") {
        let value = value
            .to_str()
            .map_err(|_| XrpcError::invalid_request("invalid proxy header format"))?;
        return parse_proxy_header(state, value).await;
    }
    match default_service(state.config(), lxm) {
        (service_id, Some(service)) => Target::configured(service, service_id),
        (_, None) => Err(XrpcError::invalid_request(format!(
            "No service configured for {lxm}"
        ))),
    }
}

/// Splits `did#service_id`, with the reference's checks and messages.
fn split_proxy_header(value: &str) -> Result<(&str, &str), XrpcError> {
    let invalid = |m: &str| Err(XrpcError::invalid_request(m));
    match value.find('#') {
        Some(0) => invalid("no did specified in proxy header"),
        None => invalid("no service id specified in proxy header"),
        Some(i) if i == value.len() - 1 => invalid("no service id specified in proxy header"),
        Some(i) if value[i + 1..].contains('#') => invalid("invalid proxy header format"),
        Some(_) if value.contains(' ') => invalid("proxy header cannot contain spaces"),
        Some(i) => Ok((&value[..i], &value[i + 1..])),
    }
}

/// Resolves an `atproto-proxy` header to a target.
pub async fn parse_proxy_header(state: &AppState, value: &str) -> Result<Target, XrpcError> {
    let (did, service_id) = split_proxy_header(value)?;
    let config = state.config();
    for (service, id) in [
        (&config.bsky_app_view, "bsky_appview"),
        (&config.report_service, "atproto_labeler"),
    ] {
        if let Some(service) = service
            && service.did == did
            && service_id == id
        {
            return Target::configured(service, id);
        }
    }
    let unresolved = || XrpcError::invalid_request("could not resolve proxy did");
    let did: Did = did.parse().map_err(|_| unresolved())?;
    let resolver = state.resolver().ok_or_else(unresolved)?;
    let doc = resolver.resolve_did(&did).await.map_err(|e| {
        tracing::info!(%did, error = %e, "proxy: DID resolution failed");
        unresolved()
    })?;
    let no_url = || XrpcError::invalid_request("could not resolve proxy did service url");
    let endpoint = doc
        .service(service_id)
        .and_then(|s| s.service_endpoint.as_str())
        .ok_or_else(no_url)?;
    let url = Url::parse(endpoint).map_err(|_| no_url())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(no_url());
    }
    Ok(Target {
        did,
        service_id: service_id.to_owned(),
        url,
        trust: Trust::FromDocument,
    })
}

/// The caller's session: an access token is required (`401 AuthMissing` without one).
pub async fn authenticate(state: &AppState, parts: &mut Parts) -> Result<AccessAuth, XrpcError> {
    let Some(header) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
        return Err(XrpcError::auth_required("Authentication Required").named("AuthMissing"));
    };
    if !header.as_bytes().starts_with(b"Bearer ") {
        return Err(XrpcError::invalid_token("Unexpected authorization type"));
    }
    <AccessAuth as axum::extract::FromRequestParts<AppState>>::from_request_parts(parts, state)
        .await
}

/// A service-auth token for `did` (signed with its repository key) for `aud`, bound to `lxm`.
pub async fn service_token(
    state: &AppState,
    did: &Did,
    aud: &str,
    lxm: &str,
) -> Result<String, XrpcError> {
    let lxm: Nsid = lxm
        .parse()
        .map_err(|_| XrpcError::invalid_request(format!("invalid method {lxm}")))?;
    let keys = state.writer().keys().clone();
    let owner = did.clone();
    let key = tokio::task::spawn_blocking(move || keys.load(&owner))
        .await
        .map_err(XrpcError::internal)?
        .map_err(|e| XrpcError::internal(format!("signing key of {did}: {e}")))?;
    let now = chrono::Utc::now().timestamp();
    mint(
        &key,
        did,
        aud,
        Some(&lxm),
        now + PROXY_TOKEN_LIFETIME_SECS,
        now,
    )
    .map_err(XrpcError::internal)
}

/// `Bearer <token>` as a header value.
fn bearer(token: &str) -> Result<HeaderValue, XrpcError> {
    HeaderValue::from_str(&format!("Bearer {token}")).map_err(XrpcError::internal)
}

/// The request's path and query as the client sent them (`/xrpc/<method>?...`): routes are
/// nested under `/xrpc`, which the router strips.
pub fn original_uri(request: &Request) -> Uri {
    let rest = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    format!("/xrpc{rest}").parse().unwrap_or_default()
}

/// Any XRPC method without a route of its own: forwarded, unless it is a `com.atproto.*` method
/// (`501 MethodNotImplemented`) or not an NSID (`404 MethodNotFound`).
pub async fn catchall(
    State(state): State<AppState>,
    Path(method): Path<String>,
    request: Request,
) -> Response {
    let uri = original_uri(&request);
    match forward(&state, &method, &uri, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn forward(
    state: &AppState,
    method: &str,
    uri: &Uri,
    request: Request,
) -> Result<Response, XrpcError> {
    if method.to_ascii_lowercase().starts_with("com.atproto.") {
        return Err(XrpcError::not_implemented(method));
    }
    if method.parse::<Nsid>().is_err() {
        return Err(XrpcError::new(
            StatusCode::NOT_FOUND,
            "MethodNotFound",
            "Method Not Found",
        ));
    }
    let http_method = match request.method().as_str() {
        "GET" => reqwest::Method::GET,
        "HEAD" => reqwest::Method::HEAD,
        "POST" => reqwest::Method::POST,
        _ => {
            return Err(XrpcError::invalid_request(
                "XRPC requests only supports GET and POST",
            ));
        }
    };
    if listed(PROTECTED_METHODS, method) {
        return Err(bad_token_method());
    }
    let target = proxy_target(state, request.headers(), method).await?;
    let (mut parts, body) = request.into_parts();
    let auth = authenticate(state, &mut parts).await?;
    let privileged = matches!(auth.scope, Scope::Access | Scope::AppPassPrivileged);
    if !privileged && listed(PRIVILEGED_METHODS, method) {
        return Err(bad_token_method());
    }
    let token = service_token(state, &auth.did, target.did.as_str(), method).await?;
    let with_body = http_method == reqwest::Method::POST;
    let mut headers = forwarded_request_headers(&parts.headers, with_body);
    headers.insert(axum::http::header::AUTHORIZATION, bearer(&token)?);
    let body = if with_body {
        Some(capped_body(state, &parts.headers, body)?)
    } else {
        None
    };
    let url = target.url_for(uri);
    let upstream = state
        .upstream()
        .send(http_method, url, target.trust, headers, body)
        .await?;
    Ok(relay(upstream).await)
}

/// The response to send back for an upstream answer: errors re-encoded, successes streamed.
async fn relay(upstream: reqwest::Response) -> Response {
    if upstream.status().as_u16() >= 400 {
        UpstreamFailure::read(upstream).await.into_response()
    } else {
        stream_response(upstream)
    }
}

/// The request body as a stream capped at the blob upload limit (`413` up front when the
/// declared length is larger; a longer stream is cut off).
fn capped_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<reqwest::Body, XrpcError> {
    let limit = state.config().blob_upload_limit;
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(XrpcError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            "request entity too large",
        ));
    }
    let mut seen: u64 = 0;
    let stream = body.into_data_stream().map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        seen = seen.saturating_add(chunk.len() as u64);
        if seen > limit {
            return Err(std::io::Error::other("request entity too large"));
        }
        Ok::<bytes::Bytes, std::io::Error>(chunk)
    });
    Ok(reqwest::Body::wrap_stream(stream))
}

/// Sends a query for the caller to `target` with a token for `aud` bound to `lxm`, relaying the
/// caller's allowed headers; `accept-encoding` is `identity` so that the answer can be read.
async fn send_query(
    state: &AppState,
    parts: &Parts,
    uri: &Uri,
    target: &Target,
    token: &str,
) -> Result<reqwest::Response, XrpcError> {
    let mut headers = forwarded_request_headers(&parts.headers, false);
    headers.insert(
        axum::http::header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    headers.insert(axum::http::header::AUTHORIZATION, bearer(token)?);
    Ok(state
        .upstream()
        .send(
            reqwest::Method::GET,
            target.url_for(uri),
            target.trust,
            headers,
            None,
        )
        .await?)
}

/// A query parameter of the original request.
fn query_param(uri: &Uri, name: &str) -> Option<String> {
    let url = Url::parse(&format!("http://x{uri}")).ok()?;
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// `app.bsky.feed.getFeed`: to the app view (or the `atproto-proxy` target) with a token whose
/// audience is the feed generator's DID (the `did` of the generator record, read through the
/// configured app view's `com.atproto.repo.getRecord`) and whose `lxm` is
/// `app.bsky.feed.getFeedSkeleton`. Without a configured app view: proxied like any method.
pub async fn get_feed(State(state): State<AppState>, request: Request) -> Response {
    const LXM: &str = "app.bsky.feed.getFeed";
    let Some(app_view) = state.config().bsky_app_view.clone() else {
        return catchall(State(state), Path(LXM.to_owned()), request).await;
    };
    let uri = original_uri(&request);
    let result = async {
        let (mut parts, _) = request.into_parts();
        let target = proxy_target(&state, &parts.headers, LXM).await?;
        let auth = authenticate(&state, &mut parts).await?;
        let feed = query_param(&uri, "feed")
            .ok_or_else(|| XrpcError::invalid_request("Params must have the property \"feed\""))?;
        let feed: AtUri = feed
            .parse()
            .map_err(|_| XrpcError::invalid_request("feed must be a valid at-uri"))?;
        let feed_did = feed_generator_did(&state, &app_view, &feed).await?;
        let skeleton = "app.bsky.feed.getFeedSkeleton";
        let token = service_token(&state, &auth.did, &feed_did, skeleton).await?;
        let upstream = send_query(&state, &parts, &uri, &target, &token).await?;
        Ok::<_, ProxyError>(relay(upstream).await)
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

/// The `did` of the feed generator record at `feed`, read (unauthenticated) from the app view.
async fn feed_generator_did(
    state: &AppState,
    app_view: &ServiceRef,
    feed: &AtUri,
) -> Result<String, ProxyError> {
    let (Some(collection), Some(rkey)) = (feed.collection(), feed.rkey()) else {
        let e = XrpcError::invalid_request("could not resolve feed did").named("UnknownFeed");
        return Err(e.into());
    };
    let mut url = Url::parse(&app_view.url).map_err(XrpcError::internal)?;
    url.set_path("/xrpc/com.atproto.repo.getRecord");
    url.query_pairs_mut()
        .append_pair("repo", feed.authority().as_ref())
        .append_pair("collection", collection.as_str())
        .append_pair("rkey", rkey.as_str());
    let upstream = state
        .upstream()
        .send(
            reqwest::Method::GET,
            url,
            Trust::Configured,
            HeaderMap::new(),
            None,
        )
        .await?;
    if upstream.status().as_u16() >= 400 {
        return Err(ProxyError::Upstream(UpstreamFailure::read(upstream).await));
    }
    let body = upstream::read_capped(upstream, upstream::MAX_RESPONSE_BYTES).await?;
    let record: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|_| upstream::upstream_failure("invalid getRecord answer"))?;
    match record.pointer("/value/did").and_then(|d| d.as_str()) {
        Some(did) => Ok(did.to_owned()),
        None => Err(XrpcError::invalid_request("could not resolve feed did")
            .named("UnknownFeed")
            .into()),
    }
}

/// `com.atproto.moderation.createReport`: the JSON body is forwarded to the report service
/// (`PDS_REPORT_SERVICE_URL`/`_DID`) or the `atproto-proxy` target, with a token bound to the
/// method; the service's answer comes back.
pub async fn create_report(State(state): State<AppState>, request: Request) -> Response {
    const LXM: &str = "com.atproto.moderation.createReport";
    let result = async {
        let (mut parts, body) = request.into_parts();
        let target = proxy_target(&state, &parts.headers, LXM).await?;
        let auth = authenticate(&state, &mut parts).await?;
        let body = axum::body::to_bytes(body, crate::api::MAX_JSON_BODY)
            .await
            .map_err(|_| XrpcError::invalid_request("request entity too large"))?;
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(serde_json::Value::Object(_)) => {}
            _ => return Err(XrpcError::invalid_request("Input must be an object")),
        }
        let token = service_token(&state, &auth.did, target.did.as_str(), LXM).await?;
        let mut headers = HeaderMap::new();
        headers.insert(axum::http::header::AUTHORIZATION, bearer(&token)?);
        headers.insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let url = target.url_for(&Uri::from_static(
            "/xrpc/com.atproto.moderation.createReport",
        ));
        let upstream = state
            .upstream()
            .send(
                reqwest::Method::POST,
                url,
                target.trust,
                headers,
                Some(reqwest::Body::from(body)),
            )
            .await?;
        Ok::<_, XrpcError>(relay(upstream).await)
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_headers_are_split_with_the_reference_messages() {
        let msg = |v: &str| split_proxy_header(v).unwrap_err().message;
        assert_eq!(
            split_proxy_header("did:web:x.test#bsky_chat").unwrap(),
            ("did:web:x.test", "bsky_chat")
        );
        assert_eq!(msg("#bsky_chat"), "no did specified in proxy header");
        assert_eq!(
            msg("did:web:x.test"),
            "no service id specified in proxy header"
        );
        assert_eq!(
            msg("did:web:x.test#"),
            "no service id specified in proxy header"
        );
        assert_eq!(msg("did:web:x.test#a#b"), "invalid proxy header format");
        assert_eq!(
            msg("did:web:x.test #a"),
            "proxy header cannot contain spaces"
        );
    }

    #[test]
    fn method_lists_compare_case_insensitively() {
        assert!(listed(PROTECTED_METHODS, "com.atproto.server.getsession"));
        assert!(listed(PRIVILEGED_METHODS, "chat.bsky.convo.listConvos"));
        assert!(!listed(PRIVILEGED_METHODS, "app.bsky.feed.getTimeline"));
    }

    #[test]
    fn default_services() {
        let vars = [
            ("PDS_BSKY_APP_VIEW_URL", "https://api.bsky.app"),
            ("PDS_BSKY_APP_VIEW_DID", "did:web:api.bsky.app"),
        ];
        let config = Config::from_vars(vars.map(|(k, v)| (k.to_owned(), v.to_owned())))
            .unwrap()
            .0;
        let (id, service) = default_service(&config, "app.bsky.feed.getTimeline");
        assert_eq!(
            (id, service.map(|s| s.did.as_str())),
            ("bsky_appview", Some("did:web:api.bsky.app"))
        );
        let (id, service) = default_service(&config, "com.atproto.moderation.createReport");
        assert_eq!((id, service), ("atproto_labeler", None));
        let (id, service) = default_service(&config, "tools.ozone.moderation.emitEvent");
        assert_eq!((id, service), ("atproto_labeler", None));
        let target =
            Target::configured(config.bsky_app_view.as_ref().unwrap(), "bsky_appview").unwrap();
        let uri: Uri = "/xrpc/app.bsky.feed.getTimeline?limit=5&cursor=a%20b"
            .parse()
            .unwrap();
        assert_eq!(
            target.url_for(&uri).as_str(),
            "https://api.bsky.app/xrpc/app.bsky.feed.getTimeline?limit=5&cursor=a%20b"
        );
    }
}
