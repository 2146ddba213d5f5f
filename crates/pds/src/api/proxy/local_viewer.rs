//! Views of the account's own newest records, built locally as the app view would show them
//! (the reference's `read-after-write/viewer.ts`): a post view with zero counts and the
//! account's basic profile as author, embeds, and profile updates.
//!
//! Images point at this PDS's `com.atproto.sync.getBlob` (the reference does the same when no
//! app view CDN pattern is configured; this server has no such setting). Record embeds are
//! looked up on the configured app view with a token bound to `getPosts`, `getFeedGenerator` or
//! `getList`; with no app view they show as not found.

use atp_syntax::{AtUri, Did};
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::Url;
use serde_json::{Map, Value, json};

use super::upstream::{self, Trust, UpstreamFailure};
use super::{ProxyError, service_token};
use crate::api::error::XrpcError;
use crate::state::AppState;

/// One of the account's records written after the app view's revision.
#[derive(Debug, Clone)]
pub struct LocalRecord {
    /// Its `at://` URI.
    pub uri: String,
    /// Its CID.
    pub cid: String,
    /// When this server indexed it.
    pub indexed_at: DateTime<Utc>,
    /// The record, as atproto JSON.
    pub record: Value,
}

impl LocalRecord {
    /// `indexedAt` as the reference writes it (ISO 8601, milliseconds, `Z`).
    pub fn indexed_at_string(&self) -> String {
        self.indexed_at.to_rfc3339_opts(SecondsFormat::Millis, true)
    }
}

/// Builds views for one account.
pub struct LocalViewer<'a> {
    state: &'a AppState,
    did: Did,
    /// The account's `profileViewBasic`, `None` if the account is gone.
    author: Option<Value>,
}

/// `value[key] = new`, or removes `key` when `new` is `None` (a JavaScript `undefined`).
fn set_or_remove(map: &mut Map<String, Value>, key: &str, new: Option<Value>) {
    match new {
        Some(v) => {
            map.insert(key.to_owned(), v);
        }
        None => {
            map.remove(key);
        }
    }
}

/// The CID string of a blob reference (typed `ref.$link`, or the legacy `cid`).
fn blob_cid(blob: &Value) -> Option<&str> {
    blob.pointer("/ref/$link")
        .or_else(|| blob.get("cid"))
        .and_then(Value::as_str)
}

/// Whether `value`'s `$type` is `nsid` (or `nsid#main`).
pub fn is_type(value: &Value, nsid: &str) -> bool {
    value
        .get("$type")
        .and_then(Value::as_str)
        .is_some_and(|t| t == nsid || t.strip_suffix("#main") == Some(nsid))
}

impl<'a> LocalViewer<'a> {
    /// A viewer for `did`, loading its handle and current profile.
    pub async fn new(state: &'a AppState, did: &Did) -> Result<LocalViewer<'a>, XrpcError> {
        let mut viewer = LocalViewer {
            state,
            did: did.clone(),
            author: None,
        };
        let Some(account) = state.store().get_account(did).await? else {
            return Ok(viewer);
        };
        let collection = "app.bsky.actor.profile"
            .parse()
            .map_err(XrpcError::internal)?;
        let rkey = "self".parse().map_err(XrpcError::internal)?;
        let profile = state
            .store()
            .get_record(did, &collection, &rkey)
            .await?
            .and_then(|r| atp_data::cbor::from_slice(&r.bytes).ok())
            .map(|v| atp_data::json::to_json(&v))
            .unwrap_or(Value::Null);
        let mut author = Map::new();
        author.insert("did".into(), did.as_str().into());
        author.insert("handle".into(), account.handle.as_str().into());
        if let Some(name) = profile.get("displayName") {
            author.insert("displayName".into(), name.clone());
        }
        if let Some(cid) = profile.get("avatar").and_then(blob_cid) {
            author.insert("avatar".into(), viewer.image_url(cid).into());
        }
        viewer.author = Some(Value::Object(author));
        Ok(viewer)
    }

    /// The URL of one of the account's blobs.
    fn image_url(&self, cid: &str) -> String {
        format!(
            "{}/xrpc/com.atproto.sync.getBlob?did={}&cid={cid}",
            self.state.config().public_url(),
            self.did
        )
    }

    /// A `profileViewBasic` with the record's display name and avatar.
    pub fn update_profile_view_basic(&self, view: &mut Value, record: &Value) {
        let avatar = record
            .get("avatar")
            .and_then(blob_cid)
            .map(|c| self.image_url(c).into());
        if let Some(map) = view.as_object_mut() {
            set_or_remove(map, "displayName", record.get("displayName").cloned());
            set_or_remove(map, "avatar", avatar);
        }
    }

    /// A `profileViewDetailed` with the record's display name, avatar, description and banner.
    pub fn update_profile_detailed(&self, view: &mut Value, record: &Value) {
        self.update_profile_view_basic(view, record);
        let banner = record
            .get("banner")
            .and_then(blob_cid)
            .map(|c| self.image_url(c).into());
        if let Some(map) = view.as_object_mut() {
            set_or_remove(map, "description", record.get("description").cloned());
            set_or_remove(map, "banner", banner);
        }
    }

    /// The `postView` of one of the account's posts (`None` when the account is gone).
    pub async fn post_view(&self, post: &LocalRecord) -> Result<Option<Value>, ProxyError> {
        let Some(author) = &self.author else {
            return Ok(None);
        };
        let mut view = json!({
            "uri": post.uri,
            "cid": post.cid,
            "likeCount": 0,
            "replyCount": 0,
            "repostCount": 0,
            "quoteCount": 0,
            "author": author,
            "record": post.record,
            "indexedAt": post.indexed_at_string(),
        });
        if let Some(embed) = self.post_embed(&post.record).await?
            && let Some(map) = view.as_object_mut()
        {
            map.insert("embed".into(), embed);
        }
        Ok(Some(view))
    }

    /// Inserts the posts newer than the feed's last item, newest first, each before the first
    /// item indexed earlier than it (the reference's `formatAndInsertPostsInFeed`).
    pub async fn insert_posts_in_feed(
        &self,
        feed: &mut Vec<Value>,
        posts: &[LocalRecord],
    ) -> Result<(), ProxyError> {
        let indexed_at = |item: &Value| {
            item.pointer("/post/indexedAt")
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let last_time = feed
            .last()
            .and_then(indexed_at)
            .unwrap_or_else(|| "1970-01-01T00:00:00.000Z".to_owned());
        for post in posts
            .iter()
            .rev()
            .filter(|p| p.indexed_at_string() > last_time)
        {
            let Some(view) = self.post_view(post).await? else {
                continue;
            };
            let time = post.indexed_at_string();
            let item = json!({ "post": view });
            match feed
                .iter()
                .position(|fi| indexed_at(fi).is_some_and(|t| t < time))
            {
                Some(idx) => feed.insert(idx, item),
                None => feed.push(item),
            }
        }
        Ok(())
    }

    async fn post_embed(&self, record: &Value) -> Result<Option<Value>, ProxyError> {
        let Some(embed) = record.get("embed") else {
            return Ok(None);
        };
        Ok(if is_type(embed, "app.bsky.embed.images") {
            Some(self.image_embed(embed))
        } else if is_type(embed, "app.bsky.embed.external") {
            Some(self.external_embed(embed))
        } else if is_type(embed, "app.bsky.embed.record") {
            Some(self.record_embed(embed).await?)
        } else if is_type(embed, "app.bsky.embed.recordWithMedia") {
            self.record_with_media_embed(embed).await?
        } else {
            None
        })
    }

    fn image_embed(&self, embed: &Value) -> Value {
        let images: Vec<Value> = embed
            .get("images")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|img| {
                let cid = img.get("image").and_then(blob_cid).unwrap_or_default();
                let mut view = Map::new();
                let thumb = self.image_url(cid);
                view.insert("thumb".into(), thumb.clone().into());
                view.insert("fullsize".into(), thumb.into());
                if let Some(ratio) = img.get("aspectRatio") {
                    view.insert("aspectRatio".into(), ratio.clone());
                }
                if let Some(alt) = img.get("alt") {
                    view.insert("alt".into(), alt.clone());
                }
                Value::Object(view)
            })
            .collect();
        json!({ "$type": "app.bsky.embed.images#view", "images": images })
    }

    fn external_embed(&self, embed: &Value) -> Value {
        let external = embed.get("external").cloned().unwrap_or(Value::Null);
        let mut view = Map::new();
        for key in ["uri", "title", "description"] {
            if let Some(v) = external.get(key) {
                view.insert(key.into(), v.clone());
            }
        }
        if let Some(cid) = external.get("thumb").and_then(blob_cid) {
            view.insert("thumb".into(), self.image_url(cid).into());
        }
        json!({ "$type": "app.bsky.embed.external#view", "external": view })
    }

    async fn record_embed(&self, embed: &Value) -> Result<Value, ProxyError> {
        let uri = embed
            .pointer("/record/uri")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let view = match self.embedded_record_view(uri).await? {
            Some(view) => view,
            None => json!({
                "$type": "app.bsky.embed.record#viewNotFound",
                "uri": uri,
                "notFound": true,
            }),
        };
        Ok(json!({ "$type": "app.bsky.embed.record#view", "record": view }))
    }

    async fn record_with_media_embed(&self, embed: &Value) -> Result<Option<Value>, ProxyError> {
        let media = embed.get("media").unwrap_or(&Value::Null);
        let media = if is_type(media, "app.bsky.embed.images") {
            self.image_embed(media)
        } else if is_type(media, "app.bsky.embed.external") {
            self.external_embed(media)
        } else {
            return Ok(None);
        };
        let inner = embed.get("record").unwrap_or(&Value::Null);
        let record = self.record_embed(inner).await?;
        Ok(Some(json!({
            "$type": "app.bsky.embed.recordWithMedia#view",
            "record": record,
            "media": media,
        })))
    }

    /// The view of a record a post embeds, from the app view.
    async fn embedded_record_view(&self, uri: &str) -> Result<Option<Value>, ProxyError> {
        let Ok(at_uri) = uri.parse::<AtUri>() else {
            return Ok(None);
        };
        let collection = at_uri.collection().map(|c| c.as_str().to_owned());
        match collection.as_deref() {
            Some("app.bsky.feed.post") => {
                let data = self
                    .app_view_query("app.bsky.feed.getPosts", &[("uris", uri)])
                    .await?;
                let Some(post) = data.pointer("/posts/0") else {
                    return Ok(None);
                };
                let mut view = Map::new();
                view.insert("$type".into(), "app.bsky.embed.record#viewRecord".into());
                for (to, from) in [
                    ("uri", "uri"),
                    ("cid", "cid"),
                    ("author", "author"),
                    ("value", "record"),
                    ("labels", "labels"),
                    ("indexedAt", "indexedAt"),
                ] {
                    if let Some(v) = post.get(from) {
                        view.insert(to.into(), v.clone());
                    }
                }
                if let Some(embed) = post.get("embed") {
                    view.insert("embeds".into(), json!([embed]));
                }
                Ok(Some(Value::Object(view)))
            }
            Some("app.bsky.feed.generator") => {
                let data = self
                    .app_view_query("app.bsky.feed.getFeedGenerator", &[("feed", uri)])
                    .await?;
                Ok(typed(data.get("view"), "app.bsky.feed.defs#generatorView"))
            }
            Some("app.bsky.graph.list") => {
                let data = self
                    .app_view_query("app.bsky.graph.getList", &[("list", uri)])
                    .await?;
                Ok(typed(data.get("list"), "app.bsky.graph.defs#listView"))
            }
            _ => Ok(None),
        }
    }

    /// A query to the configured app view on the account's behalf (`Null` without an app view).
    pub async fn app_view_query(
        &self,
        lxm: &str,
        params: &[(&str, &str)],
    ) -> Result<Value, ProxyError> {
        let Some(app_view) = &self.state.config().bsky_app_view else {
            return Ok(Value::Null);
        };
        let token = service_token(self.state, &self.did, &app_view.did, lxm).await?;
        let mut url = Url::parse(&app_view.url).map_err(XrpcError::internal)?;
        url.set_path(&format!("/xrpc/{lxm}"));
        for (k, v) in params {
            url.query_pairs_mut().append_pair(k, v);
        }
        let mut headers = axum::http::HeaderMap::new();
        let auth = axum::http::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(XrpcError::internal)?;
        headers.insert(axum::http::header::AUTHORIZATION, auth);
        let upstream = self
            .state
            .upstream()
            .send(reqwest::Method::GET, url, Trust::Configured, headers, None)
            .await?;
        if upstream.status().as_u16() >= 400 {
            return Err(ProxyError::Upstream(UpstreamFailure::read(upstream).await));
        }
        let body = upstream::read_capped(upstream, upstream::MAX_RESPONSE_BYTES).await?;
        serde_json::from_slice(&body)
            .map_err(|_| upstream::upstream_failure("invalid app view answer").into())
    }
}

/// `value` with `$type` set, if it is an object.
fn typed(value: Option<&Value>, ty: &str) -> Option<Value> {
    let mut value = value?.clone();
    value.as_object_mut()?.insert("$type".into(), ty.into());
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_cids_typed_and_legacy() {
        let typed =
            json!({"$type": "blob", "ref": {"$link": "bafyA"}, "mimeType": "image/png", "size": 1});
        assert_eq!(blob_cid(&typed), Some("bafyA"));
        assert_eq!(
            blob_cid(&json!({"cid": "bafyB", "mimeType": "image/png"})),
            Some("bafyB")
        );
        assert_eq!(blob_cid(&json!("x")), None);
    }

    #[test]
    fn type_checks_accept_main() {
        assert!(is_type(
            &json!({"$type": "app.bsky.embed.images"}),
            "app.bsky.embed.images"
        ));
        assert!(is_type(
            &json!({"$type": "app.bsky.embed.images#main"}),
            "app.bsky.embed.images"
        ));
        assert!(!is_type(
            &json!({"$type": "app.bsky.embed.images#view"}),
            "app.bsky.embed.images"
        ));
    }
}
