//! In-process HTTP tests: `app(state)` over a tempdir store and an in-process PLC directory.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::config::Config;
use crate::state::{AppState, Plc, Secrets};

pub(super) struct Harness {
    pub(super) state: AppState,
    _dir: tempfile::TempDir,
}

pub(super) fn harness_with(extra: &[(&str, &str)]) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let mut vars = vec![(
        "PDS_DATA_DIRECTORY".to_owned(),
        dir.path().to_str().unwrap().to_owned(),
    )];
    vars.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let (config, _) = Config::from_vars(vars).unwrap();
    let store = pds_store::Store::open(&config.data_dir).unwrap();
    let secrets = Secrets::load_or_generate(&config).unwrap();
    let plc = plc_directory::PlcDirectory::open(dir.path().join("plc.sqlite")).unwrap();
    Harness {
        state: AppState::new(config, store, secrets, Plc::Embedded(plc), None),
        _dir: dir,
    }
}

pub(super) fn harness() -> Harness {
    harness_with(&[])
}

impl Harness {
    pub(super) async fn raw(&self, req: Request<Body>) -> axum::response::Response {
        crate::app(self.state.clone()).oneshot(req).await.unwrap()
    }

    pub(super) async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let res = self.raw(req).await;
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, value)
    }

    pub(super) async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call("GET", uri, None, None).await
    }

    pub(super) async fn post(
        &self,
        nsid: &str,
        token: Option<&str>,
        body: Value,
    ) -> (StatusCode, Value) {
        self.call("POST", &format!("/xrpc/{nsid}"), token, Some(body))
            .await
    }

    /// Creates alice.test; returns (did, access, refresh).
    pub(super) async fn alice(&self) -> (String, String, String) {
        let (status, body) = self
            .post(
                "com.atproto.server.createAccount",
                None,
                json!({"handle": "alice.test", "email": "alice@example.com", "password": "hunter22"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (
            body["did"].as_str().unwrap().to_owned(),
            body["accessJwt"].as_str().unwrap().to_owned(),
            body["refreshJwt"].as_str().unwrap().to_owned(),
        )
    }
}

#[tokio::test]
async fn basics_and_unknown_methods() {
    let h = harness();
    let (status, _) = h.get("/xrpc/_health").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = h.get("/robots.txt").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.as_str().unwrap().contains("User-agent"));
    let (status, body) = h.get("/xrpc/com.atproto.server.describeServer").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["availableUserDomains"], json!([".test"]));
    assert_eq!(body["did"], "did:web:localhost");
    let (status, body) = h.get("/xrpc/com.atproto.admin.noSuchMethod").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_IMPLEMENTED, Some("MethodNotImplemented"))
    );
    // Not ours and no app view configured: nowhere to forward it (see api/proxy.rs).
    let (status, body) = h.get("/xrpc/app.bsky.feed.getTimeline").await;
    assert_eq!(
        (status, body["message"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("No service configured for app.bsky.feed.getTimeline")
        )
    );
    let (status, body) = h
        .post("com.atproto.server.createSession", None, json!({"nope": 1}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("InvalidRequest"))
    );
    let big = "x".repeat(super::MAX_JSON_BODY + 10);
    let (status, _) = h
        .post(
            "com.atproto.server.createSession",
            None,
            json!({"identifier": big, "password": "p"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn account_creation_registers_the_did() {
    let h = harness();
    let (did, access, _) = h.alice().await;
    assert!(did.starts_with("did:plc:"), "{did}");
    let Plc::Embedded(dir) = h.state.plc() else {
        unreachable!()
    };
    let state = dir.resolve(&did.parse().unwrap()).await.unwrap().unwrap();
    let data = state.data().unwrap();
    assert_eq!(data.pds_endpoint(), Some("http://localhost:2583"));
    assert_eq!(data.also_known_as, vec!["at://alice.test".to_owned()]);
    let key = h.state.writer().keys().load(&did.parse().unwrap()).unwrap();
    assert_eq!(
        data.atproto_key(),
        Some(key.public_key().did_key().as_str())
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let path = h
            .state
            .config()
            .data_dir
            .join("keys")
            .join(format!("{}.key", did.replace(':', "_")));
        assert_eq!(
            std::fs::metadata(path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let secrets = h.state.config().data_dir.join(crate::state::SECRETS_FILE);
        assert_eq!(
            std::fs::metadata(secrets).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let (status, body) = h
        .call(
            "GET",
            "/xrpc/com.atproto.server.getSession",
            Some(&access),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["handle"], "alice.test");
    // The genesis commit and the identity/account events are in the log.
    let events = h.state.store().events_after(0, 10).await.unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, vec!["identity", "account", "commit"]);
    // Taken handle, bad handle, foreign domain.
    for (handle, error) in [
        ("alice.test", "HandleNotAvailable"),
        ("a.test", "InvalidHandle"),
        ("bob.example.com", "InvalidHandle"),
    ] {
        let (status, body) = h
            .post(
                "com.atproto.server.createAccount",
                None,
                json!({"handle": handle, "email": "b@example.com", "password": "x"}),
            )
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some(error)),
            "{handle}"
        );
    }
}

#[tokio::test]
async fn invite_codes_when_required() {
    let h = harness_with(&[("PDS_INVITE_REQUIRED", "true")]);
    let (status, body) = h
        .post(
            "com.atproto.server.createAccount",
            None,
            json!({"handle": "bob.test", "email": "b@example.com", "password": "x"}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("InvalidInviteCode"))
    );
    let (status, body) = h
        .post("com.atproto.server.createAccount", None, json!({"handle": "bob.test", "email": "b@example.com", "password": "x", "inviteCode": "nope"}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("InvalidInviteCode"))
    );
}

#[tokio::test]
async fn sessions_login_refresh_logout() {
    let h = harness();
    let (did, _, _) = h.alice().await;
    for identifier in [
        "alice.test",
        "ALICE.test",
        "alice@example.com",
        did.as_str(),
    ] {
        let (status, body) = h
            .post(
                "com.atproto.server.createSession",
                None,
                json!({"identifier": identifier, "password": "hunter22"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{identifier}: {body}");
        assert_eq!(body["did"], did.as_str());
    }
    let (status, body) = h
        .post(
            "com.atproto.server.createSession",
            None,
            json!({"identifier": "alice.test", "password": "wrong"}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("AuthenticationRequired"))
    );
    let (_, body) = h
        .post(
            "com.atproto.server.createSession",
            None,
            json!({"identifier": "alice.test", "password": "hunter22"}),
        )
        .await;
    let refresh = body["refreshJwt"].as_str().unwrap().to_owned();
    let access = body["accessJwt"].as_str().unwrap().to_owned();
    // An access token is not a refresh token and vice versa.
    let (status, _) = h
        .call(
            "POST",
            "/xrpc/com.atproto.server.refreshSession",
            Some(&access),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = h
        .call(
            "GET",
            "/xrpc/com.atproto.server.getSession",
            Some(&refresh),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = h
        .call("GET", "/xrpc/com.atproto.server.getSession", None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = h
        .call(
            "POST",
            "/xrpc/com.atproto.server.refreshSession",
            Some(&refresh),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let refresh2 = body["refreshJwt"].as_str().unwrap().to_owned();
    assert_ne!(refresh2, refresh);
    let (status, _) = h
        .call(
            "POST",
            "/xrpc/com.atproto.server.deleteSession",
            Some(&refresh2),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = h
        .call(
            "POST",
            "/xrpc/com.atproto.server.refreshSession",
            Some(&refresh2),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("ExpiredToken"))
    );
}

/// A token of `typ` for `did` with the server's secret, expired ten seconds ago.
fn expired_token(h: &Harness, typ: &str, scope: &str, did: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = crate::auth::Claims {
        scope: scope.into(),
        sub: did.into(),
        aud: h.state.config().service_did().to_string(),
        iat: now - 100,
        exp: now - 10,
        jti: Some("expired".into()),
    };
    crate::auth::sign_jwt(h.state.secrets().jwt_secret.as_bytes(), typ, &claims)
}

#[tokio::test]
async fn expired_tokens_are_named_expired_and_forged_ones_invalid() {
    let h = harness();
    let (did, _, _) = h.alice().await;
    // The official clients refresh their session on a 401 or a 400 `ExpiredToken`, not on
    // a 400 `InvalidToken`.
    let access = expired_token(&h, "at+jwt", "com.atproto.access", &did);
    let (status, body) = h
        .call(
            "GET",
            "/xrpc/com.atproto.server.getSession",
            Some(&access),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str(), body["message"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("ExpiredToken"),
            Some("Token has expired")
        )
    );
    let refresh = expired_token(&h, "refresh+jwt", "com.atproto.refresh", &did);
    let (status, body) = h
        .call(
            "POST",
            "/xrpc/com.atproto.server.refreshSession",
            Some(&refresh),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("ExpiredToken"))
    );
    // The same expired claims signed with another secret are not expired but invalid.
    let mut forged = access.clone();
    forged.truncate(access.rfind('.').unwrap() + 1);
    forged.push_str("AAAA");
    let (status, body) = h
        .call(
            "GET",
            "/xrpc/com.atproto.server.getSession",
            Some(&forged),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("InvalidToken"))
    );
}

pub(super) fn post_record(text: &str) -> Value {
    json!({"$type": "app.bsky.feed.post", "text": text, "createdAt": "2024-01-01T00:00:00.000Z"})
}

#[tokio::test]
async fn record_writes_and_reads() {
    let h = harness();
    let (did, token, _) = h.alice().await;
    let t = Some(token.as_str());
    let mut uris = Vec::new();
    for i in 0..3 {
        let (status, body) = h
            .post("com.atproto.repo.createRecord", t, json!({"repo": "alice.test", "collection": "app.bsky.feed.post", "record": post_record(&format!("post {i}"))}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        uris.push(body["uri"].as_str().unwrap().to_owned());
    }
    let rkey = uris[0].rsplit('/').next().unwrap().to_owned();
    let (status, body) = h
        .get(&format!(
            "/xrpc/com.atproto.repo.getRecord?repo={did}&collection=app.bsky.feed.post&rkey={rkey}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["value"]["text"], "post 0");
    let first_cid = body["cid"].as_str().unwrap().to_owned();
    // Newest first, paged.
    let (_, page) = h.get("/xrpc/com.atproto.repo.listRecords?repo=alice.test&collection=app.bsky.feed.post&limit=2").await;
    assert_eq!(page["records"].as_array().unwrap().len(), 2);
    assert_eq!(page["records"][0]["uri"], uris[2].as_str());
    let cursor = page["cursor"].as_str().unwrap();
    let (_, page2) = h.get(&format!("/xrpc/com.atproto.repo.listRecords?repo=alice.test&collection=app.bsky.feed.post&limit=2&cursor={cursor}")).await;
    assert_eq!(page2["records"].as_array().unwrap().len(), 1);
    assert_eq!(page2["records"][0]["uri"], uris[0].as_str());
    let (_, rev) = h.get("/xrpc/com.atproto.repo.listRecords?repo=alice.test&collection=app.bsky.feed.post&reverse=true").await;
    assert_eq!(rev["records"][0]["uri"], uris[0].as_str());
    // putRecord with a wrong swapRecord, then a right one.
    let (status, body) = h
        .post("com.atproto.repo.putRecord", t, json!({"repo": did, "collection": "app.bsky.feed.post", "rkey": rkey, "record": post_record("edited"), "swapRecord": "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("InvalidSwap")),
        "{body}"
    );
    let (status, body) = h
        .post("com.atproto.repo.putRecord", t, json!({"repo": did, "collection": "app.bsky.feed.post", "rkey": rkey, "record": post_record("edited"), "swapRecord": first_cid}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // swapCommit must be the current commit.
    let (_, latest) = h
        .get(&format!("/xrpc/com.atproto.sync.getLatestCommit?did={did}"))
        .await;
    assert_eq!(latest["cid"], body["commit"]["cid"]);
    let (status, body) = h
        .post("com.atproto.repo.createRecord", t, json!({"repo": did, "collection": "app.bsky.feed.post", "record": post_record("x"), "swapCommit": first_cid}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("InvalidSwap"))
    );
    // Creating an existing rkey fails; bad rkey and bad collection are 400s.
    let (status, _) = h.post("com.atproto.repo.createRecord", t, json!({"repo": did, "collection": "app.bsky.feed.post", "rkey": rkey, "record": post_record("dup")})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = h.post("com.atproto.repo.createRecord", t, json!({"repo": did, "collection": "app.bsky.feed.post", "rkey": "..", "record": post_record("x")})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = h
        .post(
            "com.atproto.repo.createRecord",
            t,
            json!({"repo": did, "collection": "not an nsid", "record": post_record("x")}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // applyWrites: create a profile, delete a post.
    let rkey1 = uris[1].rsplit('/').next().unwrap();
    let (status, body) = h
        .post("com.atproto.repo.applyWrites", t, json!({"repo": did, "writes": [
            {"$type": "com.atproto.repo.applyWrites#create", "collection": "app.bsky.actor.profile", "rkey": "self", "value": {"$type": "app.bsky.actor.profile", "displayName": "Alice"}},
            {"$type": "com.atproto.repo.applyWrites#delete", "collection": "app.bsky.feed.post", "rkey": rkey1},
        ]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["results"][1]["$type"],
        "com.atproto.repo.applyWrites#deleteResult"
    );
    let (status, _) = h
        .get(&format!(
            "/xrpc/com.atproto.repo.getRecord?repo={did}&collection=app.bsky.feed.post&rkey={rkey1}"
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = h
        .post(
            "com.atproto.repo.deleteRecord",
            t,
            json!({"repo": did, "collection": "app.bsky.feed.post", "rkey": rkey}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, desc) = h
        .get(&format!("/xrpc/com.atproto.repo.describeRepo?repo={did}"))
        .await;
    assert_eq!(
        desc["collections"],
        json!(["app.bsky.actor.profile", "app.bsky.feed.post"])
    );
    // Someone else's token cannot write here.
    let (status, _) = h
        .post(
            "com.atproto.repo.createRecord",
            None,
            json!({"repo": did, "collection": "app.bsky.feed.post", "record": post_record("x")}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn commit_events_carry_a_verifiable_commit() {
    let h = harness();
    let (did, token, _) = h.alice().await;
    let (_, body) = h
        .post("com.atproto.repo.createRecord", Some(&token), json!({"repo": did, "collection": "app.bsky.feed.post", "rkey": "3jzfcijpj2z2a", "record": post_record("hi")}))
        .await;
    let events = h.state.store().events_after(0, 10).await.unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.kind.as_str(), "commit");
    let event = atp_data::cbor::from_slice(&last.body).unwrap();
    assert_eq!(
        event.get("repo").and_then(|v| v.as_str()),
        Some(did.as_str())
    );
    assert_eq!(
        event
            .get("commit")
            .and_then(|v| v.as_link())
            .map(|c| c.to_string())
            .as_deref(),
        body["commit"]["cid"].as_str()
    );
    let op = &event.get("ops").unwrap().as_array().unwrap()[0];
    assert_eq!(op.get("action").and_then(|v| v.as_str()), Some("create"));
    assert_eq!(
        op.get("path").and_then(|v| v.as_str()),
        Some("app.bsky.feed.post/3jzfcijpj2z2a")
    );
    assert!(event.get("prevData").and_then(|v| v.as_link()).is_some());
    let car = event.get("blocks").unwrap().as_bytes().unwrap();
    let mut reader = atp_data::car::CarReader::new(car).unwrap();
    let mut blocks = atp_repo::BlockMap::new();
    while let Some((cid, bytes)) = reader.next_block().unwrap() {
        blocks.insert(cid, bytes);
    }
    let commit_cid = *event.get("commit").unwrap().as_link().unwrap();
    let commit = atp_repo::SignedCommit::from_cbor(blocks.get(&commit_cid).unwrap()).unwrap();
    let key = h.state.writer().keys().load(&did.parse().unwrap()).unwrap();
    commit.verify(&key.public_key()).unwrap();
    let found =
        atp_repo::verify_record_proof(commit.data(), "app.bsky.feed.post/3jzfcijpj2z2a", &blocks)
            .unwrap();
    assert_eq!(
        found.map(|c| c.to_string()).as_deref(),
        body["cid"].as_str()
    );
}

async fn upload(h: &Harness, token: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
    let req = Request::builder()
        .method("POST")
        .uri("/xrpc/com.atproto.repo.uploadBlob")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "image/png")
        .body(Body::from(bytes))
        .unwrap();
    let res = h.raw(req).await;
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn blobs_upload_reference_and_serve() {
    let h = harness_with(&[("PDS_BLOB_UPLOAD_LIMIT", "1000")]);
    let (did, token, _) = h.alice().await;
    let data = b"\x89PNG not really".to_vec();
    let (status, body) = upload(&h, &token, data.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let blob = body["blob"].clone();
    let cid = blob["ref"]["$link"].as_str().unwrap().to_owned();
    assert_eq!(cid, atp_data::cid::cid_for_raw(&data).to_string());
    assert_eq!(blob["size"], data.len());
    let uri = format!("/xrpc/com.atproto.sync.getBlob?did={did}&cid={cid}");
    let (status, _) = h.get(&uri).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "not served before a record references it"
    );
    let (status, body) = h
        .post("com.atproto.repo.createRecord", Some(&token), json!({"repo": did, "collection": "app.bsky.actor.profile", "rkey": "self", "record": {"$type": "app.bsky.actor.profile", "avatar": blob}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let res = h
        .raw(Request::builder().uri(&uri).body(Body::empty()).unwrap())
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["content-security-policy"],
        "default-src 'none'; sandbox"
    );
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert_eq!(res.headers()["content-type"], "image/png");
    let served = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    assert_eq!(served.as_ref(), data.as_slice());
    // A record pointing at a blob never uploaded is refused.
    let mut missing = body.clone();
    missing["ref"] = json!({"$link": atp_data::cid::cid_for_raw(b"other").to_string()});
    let fake = json!({"$type": "blob", "ref": {"$link": atp_data::cid::cid_for_raw(b"other").to_string()}, "mimeType": "image/png", "size": 5});
    let (status, _) = h
        .post("com.atproto.repo.createRecord", Some(&token), json!({"repo": did, "collection": "app.bsky.feed.post", "record": {"$type": "app.bsky.feed.post", "text": "x", "embed": fake}}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Too large.
    let (status, body) = upload(&h, &token, vec![0u8; 1001]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
}

#[tokio::test]
async fn identity_resolve_handle() {
    let h = harness();
    let (did, _, _) = h.alice().await;
    let (status, body) = h
        .get("/xrpc/com.atproto.identity.resolveHandle?handle=Alice.test")
        .await;
    assert_eq!(
        (status, body["did"].as_str()),
        (StatusCode::OK, Some(did.as_str()))
    );
    let (status, _) = h
        .get("/xrpc/com.atproto.identity.resolveHandle?handle=bob.test")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = h
        .get("/xrpc/com.atproto.sync.getLatestCommit?did=did:plc:aaaaaaaaaaaaaaaaaaaaaaaa")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn record_type_and_account_state_are_checked() {
    let h = harness();
    let (did, token, _) = h.alice().await;
    let t = Some(token.as_str());
    let (status, body) = h
        .post(
            "com.atproto.repo.createRecord",
            t,
            json!({"repo": did, "collection": "app.bsky.feed.like", "record": post_record("x")}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("InvalidRequest"))
    );
    assert!(
        body["message"].as_str().unwrap().contains("Invalid $type"),
        "{body}"
    );
    let (status, _) = h
        .post(
            "com.atproto.repo.createRecord",
            t,
            json!({"repo": did, "collection": "app.bsky.feed.post", "record": {"text": "no type"}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    h.state
        .store()
        .deactivate_account(&did.parse().unwrap(), chrono::Utc::now(), None, vec![])
        .await
        .unwrap();
    let (status, body) = h
        .post(
            "com.atproto.repo.createRecord",
            t,
            json!({"repo": did, "collection": "app.bsky.feed.post", "record": post_record("x")}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("AccountDeactivated"))
    );
}

#[tokio::test]
async fn app_password_sessions_and_invites() {
    let h = harness_with(&[("PDS_INVITE_REQUIRED", "true")]);
    let store = h.state.store();
    store
        .create_invite_codes(
            vec![pds_store::NewInviteCode {
                code: "test-code".into(),
                available_uses: 1,
                for_account: "admin".into(),
                created_by: "admin".into(),
            }],
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let body = json!({"handle": "alice.test", "email": "alice@example.com", "password": "hunter22", "inviteCode": "test-code"});
    let (status, session) = h.post("com.atproto.server.createAccount", None, body).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    // The code is used up, and the email is taken, before anything reaches the PLC directory.
    let body = json!({"handle": "bob.test", "email": "bob@example.com", "password": "x", "inviteCode": "test-code"});
    let (status, err) = h.post("com.atproto.server.createAccount", None, body).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("InvalidInviteCode"))
    );
    let did: atp_syntax::Did = session["did"].as_str().unwrap().parse().unwrap();
    let hash = crate::auth::hash_password("abcd-efgh-ijkl-mnop").unwrap();
    let app_password = pds_store::AppPassword {
        name: "phone".into(),
        password_hash: hash,
        privileged: false,
        created_at: chrono::Utc::now(),
    };
    store.create_app_password(&did, app_password).await.unwrap();
    let (status, login) = h
        .post(
            "com.atproto.server.createSession",
            None,
            json!({"identifier": "alice.test", "password": "abcd-efgh-ijkl-mnop"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let access = login["accessJwt"].as_str().unwrap();
    let payload = access.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &data_encoding::BASE64URL_NOPAD
            .decode(payload.as_bytes())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["scope"], "com.atproto.appPass");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        crate::auth::ACCESS_TTL_SECS
    );
    let refresh = login["refreshJwt"].as_str().unwrap();
    let (status, refreshed) = h
        .call(
            "POST",
            "/xrpc/com.atproto.server.refreshSession",
            Some(refresh),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let payload = refreshed["accessJwt"]
        .as_str()
        .unwrap()
        .split('.')
        .nth(1)
        .unwrap()
        .to_owned();
    let claims: Value = serde_json::from_slice(
        &data_encoding::BASE64URL_NOPAD
            .decode(payload.as_bytes())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["scope"], "com.atproto.appPass");
}
