//! Read-after-write (the reference's `read-after-write/`): for `app.bsky.actor.getProfile`,
//! `app.bsky.feed.getAuthorFeed`, `app.bsky.feed.getPostThread` and `app.bsky.feed.getTimeline`,
//! when the app view's answer says (`Atproto-Repo-Rev`) that it has not yet seen the account's
//! newest commits, the account's newer posts and profile are merged into the answer, which then
//! carries `Atproto-Upstream-Lag` (milliseconds since the oldest merged record was indexed).
//!
//! What is merged, as the reference does:
//! - getProfile: the newer profile record, on the requester's own profile;
//! - getAuthorFeed: on the requester's own feed, the newer profile on their posts' authors and
//!   the newer posts, inserted by `indexedAt`;
//! - getTimeline: the newer posts, inserted by `indexedAt`;
//! - getPostThread: newer replies inside the thread; and when the app view answers `NotFound`
//!   for one of the requester's own newer posts, a thread built locally (its parents fetched
//!   from the app view).
//!
//! Nothing is merged when the upstream sends no rev, a non-JSON body, a body that does not
//! have the method's shape, or when this server's records are not newer (at most the
//! reference's 10 records are looked at); a failure while merging returns the upstream answer
//! as it was.

use atp_syntax::{AtIdentifier, AtUri, Did};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use super::local_viewer::{LocalRecord, LocalViewer, is_type};
use super::upstream::{
    MAX_RESPONSE_BYTES, UpstreamFailure, is_json_content_type, read_capped,
    relayed_response_headers, stream_response,
};
use super::{
    ProxyError, authenticate, original_uri, proxy_target, query_param, send_query, service_token,
};
use crate::api::error::XrpcError;
use crate::state::AppState;

/// The response header carrying the app view's lag.
pub const UPSTREAM_LAG_HEADER: &str = "atproto-upstream-lag";

const THREAD_VIEW_POST: &str = "app.bsky.feed.defs#threadViewPost";

/// The methods with read-after-write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Profile,
    AuthorFeed,
    PostThread,
    Timeline,
}

impl Method {
    fn lxm(self) -> &'static str {
        match self {
            Method::Profile => "app.bsky.actor.getProfile",
            Method::AuthorFeed => "app.bsky.feed.getAuthorFeed",
            Method::PostThread => "app.bsky.feed.getPostThread",
            Method::Timeline => "app.bsky.feed.getTimeline",
        }
    }
}

/// `app.bsky.actor.getProfile`.
pub async fn get_profile(state: State<AppState>, req: Request) -> Response {
    pipethrough(state, Method::Profile, req).await
}

/// `app.bsky.feed.getAuthorFeed`.
pub async fn get_author_feed(state: State<AppState>, req: Request) -> Response {
    pipethrough(state, Method::AuthorFeed, req).await
}

/// `app.bsky.feed.getPostThread`.
pub async fn get_post_thread(state: State<AppState>, req: Request) -> Response {
    pipethrough(state, Method::PostThread, req).await
}

/// `app.bsky.feed.getTimeline`.
pub async fn get_timeline(state: State<AppState>, req: Request) -> Response {
    pipethrough(state, Method::Timeline, req).await
}

async fn pipethrough(State(state): State<AppState>, method: Method, request: Request) -> Response {
    let uri = original_uri(&request);
    run(&state, method, &uri, request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// The account's records newer than an upstream rev.
#[derive(Debug, Default)]
pub struct LocalRecords {
    /// How many records are newer (profile and posts included).
    pub count: usize,
    /// The newer profile record.
    pub profile: Option<LocalRecord>,
    /// The newer posts, oldest first.
    pub posts: Vec<LocalRecord>,
}

impl LocalRecords {
    /// Milliseconds since the oldest merged record was indexed (`None` without any).
    fn lag_ms(&self) -> Option<i64> {
        let oldest = self
            .profile
            .iter()
            .chain(&self.posts)
            .map(|r| r.indexed_at)
            .min()?;
        Some((chrono::Utc::now() - oldest).num_milliseconds())
    }
}

/// The account's profile and posts written after `rev` (empty when its repository is not newer).
pub async fn local_records(
    state: &AppState,
    did: &Did,
    rev: &str,
) -> Result<LocalRecords, XrpcError> {
    let mut local = LocalRecords::default();
    match state.store().repo_root(did).await? {
        Some(root) if root.rev.as_str() > rev => {}
        _ => return Ok(local),
    }
    for record in state.store().records_since_rev(did, rev).await? {
        local.count += 1;
        let Ok(value) = atp_data::cbor::from_slice(&record.bytes) else {
            continue;
        };
        let local_record = LocalRecord {
            uri: record.uri,
            cid: record.cid.to_string(),
            indexed_at: record.indexed_at,
            record: atp_data::json::to_json(&value),
        };
        match (record.collection.as_str(), record.rkey.as_str()) {
            ("app.bsky.actor.profile", "self") => local.profile = Some(local_record),
            ("app.bsky.feed.post", _) => local.posts.push(local_record),
            _ => {}
        }
    }
    Ok(local)
}

async fn run(
    state: &AppState,
    method: Method,
    uri: &Uri,
    request: Request,
) -> Result<Response, ProxyError> {
    let lxm = method.lxm();
    let (mut parts, _) = request.into_parts();
    let target = proxy_target(state, &parts.headers, lxm).await?;
    let auth = authenticate(state, &mut parts).await?;
    let token = service_token(state, &auth.did, target.did.as_str(), lxm).await?;
    let upstream = send_query(state, &parts, uri, &target, &token).await?;
    if upstream.status().as_u16() >= 400 {
        let failure = UpstreamFailure::read(upstream).await;
        if method == Method::PostThread
            && failure.error.as_deref() == Some("NotFound")
            && let Some(found) = thread_not_found(state, &auth.did, uri, &failure).await
        {
            return Ok(found);
        }
        return Err(ProxyError::Upstream(failure));
    }
    let rev = upstream
        .headers()
        .get("atproto-repo-rev")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Some(rev) = rev else {
        return Ok(stream_response(upstream));
    };
    if is_json_content_type(upstream.headers()) == Some(false) {
        return Ok(stream_response(upstream));
    }
    let local = match local_records(state, &auth.did, &rev).await {
        Ok(local) if local.count > 0 => local,
        Ok(_) => return Ok(stream_response(upstream)),
        Err(e) => {
            tracing::warn!(did = %auth.did, error = ?e, "read-after-write: local records");
            return Ok(stream_response(upstream));
        }
    };
    let status = upstream.status();
    let mut headers = relayed_response_headers(upstream.headers(), true);
    headers.remove("content-length");
    headers.remove("content-encoding");
    let body = read_capped(upstream, MAX_RESPONSE_BYTES).await?;
    let parsed = serde_json::from_slice::<Value>(&body);
    let buffered = move || buffered_response(status, headers, body);
    let original: Value = match parsed {
        Ok(v) if has_output_shape(method, &v) => v,
        _ => return Ok(buffered()),
    };
    let merged = async {
        let viewer = LocalViewer::new(state, &auth.did).await?;
        munge(method, &viewer, original, &local, &auth.did).await
    };
    match merged.await {
        Ok(data) => Ok(munged_response(data, local.lag_ms())),
        Err(e) => {
            tracing::warn!(did = %auth.did, error = ?e, "read-after-write: merge failed");
            Ok(buffered())
        }
    }
}

fn buffered_response(status: StatusCode, headers: HeaderMap, body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// A merged answer: JSON, with `Atproto-Upstream-Lag` when records were merged.
fn munged_response(data: Value, lag_ms: Option<i64>) -> Response {
    let mut response = axum::Json(data).into_response();
    if let Some(lag) = lag_ms {
        response
            .headers_mut()
            .insert(UPSTREAM_LAG_HEADER, HeaderValue::from(lag));
    }
    response
}

fn str_at<'v>(value: &'v Value, pointer: &str) -> Option<&'v str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// Whether an upstream answer has the parts of the method's output that merging touches.
fn has_output_shape(method: Method, value: &Value) -> bool {
    match method {
        Method::Profile => str_at(value, "/did").is_some(),
        Method::PostThread => value.get("thread").is_some_and(Value::is_object),
        Method::AuthorFeed | Method::Timeline => value
            .get("feed")
            .and_then(Value::as_array)
            .is_some_and(|feed| {
                feed.iter().all(|item| {
                    str_at(item, "/post/uri").is_some()
                        && str_at(item, "/post/author/did").is_some()
                        && str_at(item, "/post/indexedAt").is_some()
                })
            }),
    }
}

async fn munge(
    method: Method,
    viewer: &LocalViewer<'_>,
    mut original: Value,
    local: &LocalRecords,
    requester: &Did,
) -> Result<Value, ProxyError> {
    match method {
        Method::Profile => {
            if let Some(profile) = &local.profile
                && str_at(&original, "/did") == Some(requester.as_str())
            {
                viewer.update_profile_detailed(&mut original, &profile.record);
            }
        }
        Method::AuthorFeed => {
            if !is_users_feed(&original, requester) {
                return Ok(original);
            }
            let mut feed = take_feed(&mut original);
            if let Some(profile) = &local.profile {
                for item in &mut feed {
                    if str_at(item, "/post/author/did") == Some(requester.as_str())
                        && let Some(author) = item.pointer_mut("/post/author")
                    {
                        viewer.update_profile_view_basic(author, &profile.record);
                    }
                }
            }
            viewer.insert_posts_in_feed(&mut feed, &local.posts).await?;
            original["feed"] = Value::Array(feed);
        }
        Method::Timeline => {
            let mut feed = take_feed(&mut original);
            viewer.insert_posts_in_feed(&mut feed, &local.posts).await?;
            original["feed"] = Value::Array(feed);
        }
        Method::PostThread => {
            if let Some(thread) = original.get_mut("thread")
                && is_type(thread, THREAD_VIEW_POST)
            {
                add_posts_to_thread(viewer, thread, &local.posts).await?;
            }
        }
    }
    Ok(original)
}

fn take_feed(original: &mut Value) -> Vec<Value> {
    match original.get_mut("feed").map(Value::take) {
        Some(Value::Array(feed)) => feed,
        _ => Vec::new(),
    }
}

/// Whether a feed is the requester's own: its first item is their post or their repost.
fn is_users_feed(original: &Value, requester: &Did) -> bool {
    let Some(first) = original.pointer("/feed/0") else {
        return false;
    };
    match first.get("reason") {
        None => str_at(first, "/post/author/did") == Some(requester.as_str()),
        Some(reason) => {
            is_type(reason, "app.bsky.feed.defs#reasonRepost")
                && str_at(reason, "/by/did") == Some(requester.as_str())
        }
    }
}

/// Inserts, as replies, the posts that reply inside `thread` (a `threadViewPost`).
async fn add_posts_to_thread(
    viewer: &LocalViewer<'_>,
    thread: &mut Value,
    posts: &[LocalRecord],
) -> Result<(), ProxyError> {
    let thread_uri = str_at(thread, "/post/uri").map(str::to_owned);
    let thread_root = str_at(thread, "/post/record/reply/root/uri").map(str::to_owned);
    for post in posts {
        let Some(root) = str_at(&post.record, "/reply/root/uri") else {
            continue;
        };
        if Some(root) != thread_uri.as_deref() && Some(root) != thread_root.as_deref() {
            continue;
        }
        let Some(parent) = str_at(&post.record, "/reply/parent/uri") else {
            continue;
        };
        if !contains_post(thread, parent) {
            continue;
        }
        if let Some(view) = viewer.post_view(post).await? {
            let reply = json!({ "$type": THREAD_VIEW_POST, "post": view });
            insert_reply(thread, parent, &reply);
        }
    }
    Ok(())
}

/// Whether a thread view holds the post `uri` (itself or in its replies).
fn contains_post(view: &Value, uri: &str) -> bool {
    str_at(view, "/post/uri") == Some(uri)
        || replies(view)
            .iter()
            .any(|r| is_type(r, THREAD_VIEW_POST) && contains_post(r, uri))
}

fn replies(view: &Value) -> &[Value] {
    view.get("replies")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// Puts `reply` first among the replies of the post `parent`, wherever it is in the thread.
fn insert_reply(view: &mut Value, parent: &str, reply: &Value) {
    if str_at(view, "/post/uri") == Some(parent) {
        let mut list = vec![reply.clone()];
        list.extend(replies(view).iter().cloned());
        view["replies"] = Value::Array(list);
        return;
    }
    if let Some(list) = view.get_mut("replies").and_then(Value::as_array_mut) {
        for r in list.iter_mut().filter(|r| is_type(r, THREAD_VIEW_POST)) {
            insert_reply(r, parent, reply);
        }
    }
}

/// getPostThread answered `NotFound`: if the post is one of the requester's newer posts, its
/// thread built locally (the reference's `readAfterWriteNotFound`).
async fn thread_not_found(
    state: &AppState,
    requester: &Did,
    uri: &Uri,
    failure: &UpstreamFailure,
) -> Option<Response> {
    let rev = failure.headers.get("atproto-repo-rev")?.to_str().ok()?;
    let post_uri: AtUri = query_param(uri, "uri")?.parse().ok()?;
    let host = match post_uri.authority() {
        AtIdentifier::Did(did) => did.clone(),
        AtIdentifier::Handle(handle) => {
            let account = state.store().get_account_by_handle(handle).await.ok()??;
            account.did
        }
    };
    if &host != requester {
        return None;
    }
    let resolved = format!(
        "at://{host}/{}/{}",
        post_uri.collection()?,
        post_uri.rkey()?
    );
    let local = local_records(state, requester, rev).await.ok()?;
    let found = local.posts.iter().find(|p| p.uri == resolved)?;
    let viewer = LocalViewer::new(state, requester).await.ok()?;
    let view = viewer.post_view(found).await.ok()??;
    let mut thread = json!({ "$type": THREAD_VIEW_POST, "post": view });
    let rest: Vec<LocalRecord> = local
        .posts
        .iter()
        .filter(|p| p.uri != resolved)
        .cloned()
        .collect();
    add_posts_to_thread(&viewer, &mut thread, &rest)
        .await
        .ok()?;
    let is_post = is_type(&found.record, "app.bsky.feed.post");
    if let Some(parent) = str_at(&found.record, "/reply/parent/uri").filter(|_| is_post) {
        let height = query_param(uri, "parentHeight");
        let mut params = vec![("uri", parent), ("depth", "0")];
        if let Some(h) = height.as_deref() {
            params.push(("parentHeight", h));
        }
        if let Ok(res) = viewer
            .app_view_query("app.bsky.feed.getPostThread", &params)
            .await
            && let Some(parent_thread) = res.get("thread")
        {
            thread["parent"] = parent_thread.clone();
        }
    }
    Some(munged_response(json!({ "thread": thread }), local.lag_ms()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn did() -> Did {
        "did:plc:abcdefghijklmnopqrstuvwx".parse().unwrap()
    }

    #[test]
    fn a_feed_is_the_users_when_it_starts_with_their_post_or_repost() {
        let me = did();
        let own = json!({"feed": [{"post": {"author": {"did": me.as_str()}}}]});
        assert!(is_users_feed(&own, &me));
        let other = json!({"feed": [{"post": {"author": {"did": "did:plc:other"}}}]});
        assert!(!is_users_feed(&other, &me));
        let repost = json!({"feed": [{
            "post": {"author": {"did": "did:plc:other"}},
            "reason": {"$type": "app.bsky.feed.defs#reasonRepost", "by": {"did": me.as_str()}}
        }]});
        assert!(is_users_feed(&repost, &me));
        assert!(!is_users_feed(&json!({"feed": []}), &me));
    }

    #[test]
    fn replies_go_first_under_their_parent() {
        let mut thread = json!({
            "$type": THREAD_VIEW_POST,
            "post": {"uri": "at://a/p/1"},
            "replies": [{"$type": THREAD_VIEW_POST, "post": {"uri": "at://a/p/2"}}]
        });
        let reply = json!({"$type": THREAD_VIEW_POST, "post": {"uri": "at://a/p/3"}});
        assert!(contains_post(&thread, "at://a/p/2"));
        insert_reply(&mut thread, "at://a/p/2", &reply);
        assert_eq!(
            thread.pointer("/replies/0/replies/0/post/uri").unwrap(),
            "at://a/p/3"
        );
        insert_reply(&mut thread, "at://a/p/1", &reply);
        assert_eq!(thread.pointer("/replies/0/post/uri").unwrap(), "at://a/p/3");
        assert_eq!(thread.pointer("/replies/1/post/uri").unwrap(), "at://a/p/2");
    }

    #[test]
    fn output_shapes() {
        assert!(has_output_shape(
            Method::Profile,
            &json!({"did": "did:plc:x", "handle": "h"})
        ));
        assert!(!has_output_shape(Method::Profile, &json!({"handle": "h"})));
        assert!(has_output_shape(Method::Timeline, &json!({"feed": []})));
        assert!(!has_output_shape(
            Method::Timeline,
            &json!({"feed": [{"post": {}}]})
        ));
        assert!(!has_output_shape(Method::PostThread, &json!({"thread": 1})));
    }
}
