//! In-process tests of app passwords, invite codes, account status, signing-key reservation
//! and handle updates, including refused requests that must change nothing.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};

use super::tests::{Harness, harness, harness_with, post_record};
use crate::state::Plc;

/// What a refused request must leave unchanged: the repo root, the records and the last event.
/// (Read from the store: listRecords does not serve a deactivated repository.)
async fn snapshot(h: &Harness, did: &str) -> (Value, Value, i64) {
    let d: atp_syntax::Did = did.parse().unwrap();
    let root = h.state.store().repo_root(&d).await.unwrap().unwrap();
    let page = pds_store::ListRecords {
        limit: 100,
        cursor: None,
        reverse: false,
    };
    let posts = "app.bsky.feed.post".parse().unwrap();
    let stored = h
        .state
        .store()
        .list_records(&d, &posts, page)
        .await
        .unwrap();
    let records: Vec<Value> = stored
        .iter()
        .map(|r| json!([r.uri, r.cid.to_string()]))
        .collect();
    let records = Value::from(records);
    let seq = h.state.store().last_seq().await.unwrap();
    (
        json!([root.commit.to_string(), root.rev.to_string()]),
        records,
        seq,
    )
}

fn basic(user: &str, password: &str) -> String {
    let token = data_encoding::BASE64.encode(format!("{user}:{password}").as_bytes());
    format!("Basic {token}")
}

impl Harness {
    async fn admin_post(
        &self,
        nsid: &str,
        auth: Option<String>,
        body: Value,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method("POST")
            .uri(format!("/xrpc/{nsid}"))
            .header("content-type", "application/json");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let res = self
            .raw(req.body(Body::from(body.to_string())).unwrap())
            .await;
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn admin(&self) -> String {
        basic("admin", self.state.secrets().admin_password.as_str())
    }

    async fn login(&self, identifier: &str, password: &str) -> (StatusCode, Value) {
        self.post(
            "com.atproto.server.createSession",
            None,
            json!({"identifier": identifier, "password": password}),
        )
        .await
    }
}

fn err(res: &(StatusCode, Value)) -> (StatusCode, Option<&str>) {
    (res.0, res.1["error"].as_str())
}

#[tokio::test]
async fn app_passwords_create_list_revoke() {
    let h = harness();
    let (did, full, _) = h.alice().await;
    let create = |name: &str, privileged: bool| json!({"name": name, "privileged": privileged});
    let res = h
        .post(
            "com.atproto.server.createAppPassword",
            None,
            create("x", false),
        )
        .await;
    assert_eq!(
        err(&res),
        (StatusCode::UNAUTHORIZED, Some("AuthenticationRequired"))
    );
    let (status, created) = h
        .post(
            "com.atproto.server.createAppPassword",
            Some(&full),
            create("phone", false),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let password = created["password"].as_str().unwrap().to_owned();
    assert_eq!(
        (password.len(), created["name"].as_str()),
        (19, Some("phone"))
    );
    assert_eq!(created["privileged"], false);
    let res = h
        .post(
            "com.atproto.server.createAppPassword",
            Some(&full),
            create("phone", true),
        )
        .await;
    assert_eq!(err(&res), (StatusCode::BAD_REQUEST, Some("InvalidRequest")));

    let (status, login) = h.login("alice.test", &password).await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let app = login["accessJwt"].as_str().unwrap().to_owned();
    let app_refresh = login["refreshJwt"].as_str().unwrap().to_owned();
    // App-password sessions cannot mint app passwords or change the account's status.
    let res = h
        .post(
            "com.atproto.server.createAppPassword",
            Some(&app),
            create("evil", true),
        )
        .await;
    assert_eq!(err(&res), (StatusCode::UNAUTHORIZED, Some("InvalidToken")));
    let res = h
        .post(
            "com.atproto.server.deactivateAccount",
            Some(&app),
            json!({}),
        )
        .await;
    assert_eq!(err(&res), (StatusCode::UNAUTHORIZED, Some("InvalidToken")));
    let res = h
        .post(
            "com.atproto.server.revokeAppPassword",
            Some(&app),
            json!({"name": "phone"}),
        )
        .await;
    assert_eq!(err(&res), (StatusCode::UNAUTHORIZED, Some("InvalidToken")));
    let (status, list) = h
        .call(
            "GET",
            "/xrpc/com.atproto.server.listAppPasswords",
            Some(&app),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["passwords"].as_array().unwrap().len(), 1);
    assert_eq!(list["passwords"][0]["name"], "phone");
    assert!(list["passwords"][0].get("password").is_none());
    let d: atp_syntax::Did = did.parse().unwrap();
    assert_eq!(
        h.state.store().list_app_passwords(&d).await.unwrap().len(),
        1
    );

    let (status, _) = h
        .post(
            "com.atproto.server.revokeAppPassword",
            Some(&full),
            json!({"name": "phone"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let res = h.login("alice.test", &password).await;
    assert_eq!(res.0, StatusCode::UNAUTHORIZED);
    let res = h
        .call(
            "POST",
            "/xrpc/com.atproto.server.refreshSession",
            Some(&app_refresh),
            None,
        )
        .await;
    assert_eq!(err(&res), (StatusCode::BAD_REQUEST, Some("ExpiredToken")));
    let (_, list) = h
        .call(
            "GET",
            "/xrpc/com.atproto.server.listAppPasswords",
            Some(&full),
            None,
        )
        .await;
    assert_eq!(list["passwords"], json!([]));
}

#[tokio::test]
async fn privileged_app_password_scope() {
    let h = harness();
    let (_, full, _) = h.alice().await;
    let (_, created) = h
        .post(
            "com.atproto.server.createAppPassword",
            Some(&full),
            json!({"name": "trusted", "privileged": true}),
        )
        .await;
    let (status, login) = h
        .login("alice.test", created["password"].as_str().unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
    let token = login["accessJwt"].as_str().unwrap();
    let res = h
        .post(
            "com.atproto.server.createAppPassword",
            Some(token),
            json!({"name": "other"}),
        )
        .await;
    assert_eq!(err(&res), (StatusCode::UNAUTHORIZED, Some("InvalidToken")));
}

#[tokio::test]
async fn invite_codes_admin_and_account() {
    let h = harness_with(&[
        ("PDS_INVITE_REQUIRED", "true"),
        ("PDS_ADMIN_PASSWORD", "s3cret"),
    ]);
    let nsid = "com.atproto.server.createInviteCode";
    for auth in [
        None,
        Some(basic("admin", "wrong")),
        Some(basic("root", "s3cret")),
        Some("Bearer x".to_owned()),
    ] {
        let res = h.admin_post(nsid, auth, json!({"useCount": 1})).await;
        assert_eq!(
            err(&res),
            (StatusCode::UNAUTHORIZED, Some("AuthenticationRequired"))
        );
    }
    let res = h
        .admin_post(
            nsid,
            Some(h.admin()),
            json!({"useCount": 1, "forAccount": "nope"}),
        )
        .await;
    assert_eq!(err(&res), (StatusCode::BAD_REQUEST, Some("InvalidRequest")));
    let (status, body) = h
        .admin_post(nsid, Some(h.admin()), json!({"useCount": 1}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let code = body["code"].as_str().unwrap().to_owned();
    assert!(code.starts_with("localhost-"), "{code}");

    let account = json!({"handle": "alice.test", "email": "a@example.com", "password": "pw", "inviteCode": code});
    let (status, alice) = h
        .post("com.atproto.server.createAccount", None, account)
        .await;
    assert_eq!(status, StatusCode::OK, "{alice}");
    // The code is exhausted: the second account is refused and nothing is registered.
    let account = json!({"handle": "bob.test", "email": "b@example.com", "password": "pw", "inviteCode": code});
    let res = h
        .post("com.atproto.server.createAccount", None, account)
        .await;
    assert_eq!(
        err(&res),
        (StatusCode::BAD_REQUEST, Some("InvalidInviteCode"))
    );
    let bob: atp_syntax::Handle = "bob.test".parse().unwrap();
    assert!(
        h.state
            .store()
            .get_account_by_handle(&bob)
            .await
            .unwrap()
            .is_none()
    );

    let did = alice["did"].as_str().unwrap();
    let token = alice["accessJwt"].as_str().unwrap();
    let (status, body) = h
        .admin_post(
            "com.atproto.server.createInviteCodes",
            Some(h.admin()),
            json!({"codeCount": 2, "useCount": 3, "forAccounts": [did, "did:plc:someoneelse"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["codes"][0]["account"], did);
    assert_eq!(body["codes"][0]["codes"].as_array().unwrap().len(), 2);
    assert_eq!(body["codes"][1]["codes"].as_array().unwrap().len(), 2);
    let (status, mine) = h
        .call(
            "GET",
            "/xrpc/com.atproto.server.getAccountInviteCodes",
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    let codes = mine["codes"].as_array().unwrap();
    assert_eq!(codes.len(), 2);
    assert_eq!(
        (
            codes[0]["available"].as_u64(),
            codes[0]["forAccount"].as_str()
        ),
        (Some(3), Some(did))
    );
    assert_eq!(codes[0]["createdBy"], "admin");
    assert_eq!(codes[0]["uses"], json!([]));
    let (_, one) = h
        .admin_post(
            "com.atproto.server.createInviteCode",
            Some(h.admin()),
            json!({"useCount": 1, "forAccount": did}),
        )
        .await;
    let account = json!({"handle": "bob.test", "email": "b@example.com", "password": "pw", "inviteCode": one["code"]});
    let (status, _) = h
        .post("com.atproto.server.createAccount", None, account)
        .await;
    assert_eq!(status, StatusCode::OK);
    let uri = "/xrpc/com.atproto.server.getAccountInviteCodes";
    let (_, all) = h.call("GET", uri, Some(token), None).await;
    assert_eq!(all["codes"].as_array().unwrap().len(), 3);
    assert_eq!(all["codes"][2]["uses"].as_array().unwrap().len(), 1);
    let (_, unused) = h
        .call(
            "GET",
            &format!("{uri}?includeUsed=false"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(unused["codes"].as_array().unwrap().len(), 2);
    let res = h
        .call(
            "GET",
            "/xrpc/com.atproto.server.getAccountInviteCodes",
            None,
            None,
        )
        .await;
    assert_eq!(res.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn deactivation_refuses_writes_and_reactivation_restores_them() {
    let h = harness();
    let (did, token, _) = h.alice().await;
    let write = |text: &str| json!({"repo": did, "collection": "app.bsky.feed.post", "record": post_record(text)});
    let (status, _) = h
        .post("com.atproto.repo.createRecord", Some(&token), write("one"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let res = h
        .post(
            "com.atproto.server.deactivateAccount",
            Some(&token),
            json!({"deleteAfter": "soon"}),
        )
        .await;
    assert_eq!(err(&res), (StatusCode::BAD_REQUEST, Some("InvalidRequest")));
    let (status, _) = h
        .post(
            "com.atproto.server.deactivateAccount",
            Some(&token),
            json!({"deleteAfter": "2030-01-01T00:00:00.000Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let d: atp_syntax::Did = did.parse().unwrap();
    let account = h.state.store().get_account(&d).await.unwrap().unwrap();
    assert!(account.deactivated_at.is_some() && account.delete_after.is_some());
    let last = h
        .state
        .store()
        .events_after(0, 100)
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(last.kind, pds_store::EventKind::Account);

    let before = snapshot(&h, &did).await;
    let res = h
        .post("com.atproto.repo.createRecord", Some(&token), write("two"))
        .await;
    assert_eq!(
        err(&res),
        (StatusCode::UNAUTHORIZED, Some("AccountDeactivated"))
    );
    assert_eq!(snapshot(&h, &did).await, before);

    let (status, login) = h.login("alice.test", "hunter22").await;
    assert_eq!(status, StatusCode::OK, "{login}");
    assert_eq!(
        (login["active"].as_bool(), login["status"].as_str()),
        (Some(false), Some("deactivated"))
    );
    let (_, session) = h
        .call(
            "GET",
            "/xrpc/com.atproto.server.getSession",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(session["status"], "deactivated");
    let (status, check) = h
        .call(
            "GET",
            "/xrpc/com.atproto.server.checkAccountStatus",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{check}");
    assert_eq!(check["activated"], false);

    let seq = h.state.store().last_seq().await.unwrap();
    let (status, _) = h
        .call(
            "POST",
            "/xrpc/com.atproto.server.activateAccount",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let kinds: Vec<_> = h
        .state
        .store()
        .events_after(seq, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    use pds_store::EventKind::{Account, Identity, Sync};
    assert_eq!(kinds, vec![Identity, Account, Sync]);
    let (status, login) = h.login("alice.test", "hunter22").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(login["active"], true);
    assert!(login.get("status").is_none(), "{login}");
    let (status, _) = h
        .post("com.atproto.repo.createRecord", Some(&token), write("two"))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn check_account_status_counts() {
    let h = harness();
    let (did, token, _) = h.alice().await;
    let record =
        json!({"repo": did, "collection": "app.bsky.feed.post", "record": post_record("hi")});
    let (status, _) = h
        .post("com.atproto.repo.createRecord", Some(&token), record)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = h
        .call(
            "GET",
            "/xrpc/com.atproto.server.checkAccountStatus",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let d: atp_syntax::Did = did.parse().unwrap();
    let root = h.state.store().repo_root(&d).await.unwrap().unwrap();
    assert_eq!(body["activated"], true);
    assert_eq!(body["validDid"], true);
    assert_eq!(body["repoCommit"], root.commit.to_string());
    assert_eq!(body["repoRev"], root.rev.to_string());
    assert_eq!(body["indexedRecords"], 1);
    let blocks = h.state.store().block_store(&d).count().await.unwrap();
    assert_eq!(body["repoBlocks"].as_u64(), Some(blocks));
    assert!(blocks >= 3);
    assert_eq!(
        (
            body["expectedBlobs"].as_u64(),
            body["importedBlobs"].as_u64()
        ),
        (Some(0), Some(0))
    );
    assert_eq!(body["privateStateValues"], 0);
    let res = h
        .call(
            "GET",
            "/xrpc/com.atproto.server.checkAccountStatus",
            None,
            None,
        )
        .await;
    assert_eq!(res.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn reserve_signing_key_per_did_or_unbound() {
    let h = harness();
    let nsid = "com.atproto.server.reserveSigningKey";
    let (status, a) = h
        .post(nsid, None, json!({"did": "did:plc:abcdefghijklmnop"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{a}");
    let key = a["signingKey"].as_str().unwrap();
    let public = atp_crypto::PublicKey::from_did_key(key).unwrap();
    assert_eq!(public.curve(), atp_crypto::Curve::K256);
    let (_, again) = h
        .post(nsid, None, json!({"did": "did:plc:abcdefghijklmnop"}))
        .await;
    assert_eq!(again["signingKey"], a["signingKey"]);
    let (_, unbound) = h.post(nsid, None, json!({})).await;
    let (_, unbound2) = h.post(nsid, None, json!({})).await;
    assert_ne!(unbound["signingKey"], a["signingKey"]);
    assert_ne!(unbound["signingKey"], unbound2["signingKey"]);
    let res = h.post(nsid, None, json!({"did": "not a did"})).await;
    assert_eq!(err(&res), (StatusCode::BAD_REQUEST, Some("InvalidRequest")));
}

async fn plc_log_len(h: &Harness, did: &str) -> usize {
    let Plc::Embedded(dir) = h.state.plc() else {
        panic!("tests use the embedded directory")
    };
    dir.op_log(&did.parse().unwrap()).await.unwrap().len()
}

async fn well_known(h: &Harness, host: &str) -> (StatusCode, String) {
    let req = Request::builder()
        .uri("/.well-known/atproto-did")
        .header("host", host)
        .body(Body::empty())
        .unwrap();
    let res = h.raw(req).await;
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn update_handle_updates_plc_row_and_events() {
    let h = harness();
    let (did, token, _) = h.alice().await;
    let (_, other) = h
        .post(
            "com.atproto.server.createAccount",
            None,
            json!({"handle": "carol.test", "email": "c@example.com", "password": "pw"}),
        )
        .await;
    assert!(other["did"].is_string());
    let nsid = "com.atproto.identity.updateHandle";
    let plc_before = plc_log_len(&h, &did).await;
    let before = snapshot(&h, &did).await;
    for (handle, error) in [
        // Not a handle at all: the lexicon layer refuses it first (`Input/handle must be a valid
        // handle`), as the reference does.
        ("no", "InvalidRequest"),
        ("al.test", "InvalidHandle"),
        ("a.b.test", "InvalidHandle"),
        ("carol.test", "InvalidRequest"),
        ("alice.example.com", "InvalidRequest"),
    ] {
        let res = h.post(nsid, Some(&token), json!({"handle": handle})).await;
        assert_eq!(
            err(&res),
            (StatusCode::BAD_REQUEST, Some(error)),
            "{handle}"
        );
    }
    let res = h.post(nsid, None, json!({"handle": "bob.test"})).await;
    assert_eq!(res.0, StatusCode::UNAUTHORIZED);
    assert_eq!(snapshot(&h, &did).await, before);
    assert_eq!(plc_log_len(&h, &did).await, plc_before);

    let (status, body) = h
        .post(nsid, Some(&token), json!({"handle": "Bob.TEST"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(plc_log_len(&h, &did).await, plc_before + 1);
    let Plc::Embedded(dir) = h.state.plc() else {
        panic!("embedded")
    };
    let state = dir.resolve(&did.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(state.data().unwrap().also_known_as, vec!["at://bob.test"]);
    let (_, resolved) = h
        .get("/xrpc/com.atproto.identity.resolveHandle?handle=bob.test")
        .await;
    assert_eq!(resolved["did"], did.as_str());
    let (_, resolved) = h
        .get("/xrpc/com.atproto.identity.resolveHandle?handle=alice.test")
        .await;
    assert_eq!(resolved["error"], "HandleNotFound");
    let last = h
        .state
        .store()
        .events_after(0, 100)
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(last.kind, pds_store::EventKind::Identity);
    let body = atp_data::cbor::from_slice(&last.body).unwrap();
    assert_eq!(
        body.get("handle").and_then(|v| v.as_str()),
        Some("bob.test")
    );
    // Setting the current handle again changes nothing in PLC but re-announces it.
    let (status, _) = h
        .post(nsid, Some(&token), json!({"handle": "bob.test"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(plc_log_len(&h, &did).await, plc_before + 1);

    assert_eq!(
        well_known(&h, "bob.test").await,
        (StatusCode::OK, did.clone())
    );
    assert_eq!(
        well_known(&h, "BOB.test:2583").await,
        (StatusCode::OK, did.clone())
    );
    assert_eq!(well_known(&h, "alice.test").await.0, StatusCode::NOT_FOUND);
    assert_eq!(well_known(&h, "example.com").await.0, StatusCode::NOT_FOUND);
}
