//! `com.atproto.admin.*` against the real `pds serve` binary: basic-auth refusal on every
//! endpoint; account views, search and invite codes; handle and password changes; takedowns of
//! accounts, records and blobs with their effects on login, reads, exports and blobs and the
//! `#account` events on the firehose; deletion (rows, files, events).

mod harness;

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use harness::{Account, Reply, Server, create_account, get, login, post, post_bytes};

const PASSWORD: &str = "admin-secret";

async fn start(extra: &[(&str, &str)]) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let mut env = vec![("PDS_ADMIN_PASSWORD", PASSWORD)];
    env.extend_from_slice(extra);
    let server = Server::start(dir.path(), &env).await;
    (dir, server)
}

/// `<base>/xrpc/<method>?<params>` (repeated keys allowed), percent-encoded.
fn url(server: &Server, method: &str, params: &[(&str, &str)]) -> String {
    let encode = |s: &str| -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    format!("{}?{}", server.xrpc(method), query.join("&"))
}

/// A GET as the administrator (`password`), with repeated keys allowed.
async fn admin_get_as(
    server: &Server,
    password: &str,
    method: &str,
    params: &[(&str, &str)],
) -> Reply {
    let res = reqwest::Client::new()
        .get(url(server, method, params))
        .basic_auth("admin", Some(password))
        .send()
        .await
        .unwrap();
    Reply::read(res).await
}

async fn admin_get(server: &Server, method: &str, params: &[(&str, &str)]) -> Reply {
    admin_get_as(server, PASSWORD, method, params).await
}

async fn admin_post(server: &Server, method: &str, body: Value) -> Reply {
    let res = reqwest::Client::new()
        .post(server.xrpc(method))
        .json(&body)
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    Reply::read(res).await
}

/// The string `field` of every element of the array `list`.
fn strs<'a>(list: &'a Value, field: &str) -> Vec<&'a str> {
    list.as_array()
        .expect("an array")
        .iter()
        .map(|item| item[field].as_str().expect("a string"))
        .collect()
}

fn repo_ref(did: &str) -> Value {
    json!({"$type": "com.atproto.admin.defs#repoRef", "did": did})
}

/// The `#account` event bodies of `did` in a replay of the whole log, in order.
async fn account_events(server: &Server, did: &str) -> Vec<atp_data::Value> {
    let url = format!(
        "ws://127.0.0.1:{}/xrpc/com.atproto.sync.subscribeRepos?cursor=0",
        server.port
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut out = Vec::new();
    while let Ok(Some(Ok(Message::Binary(b)))) =
        tokio::time::timeout(Duration::from_millis(700), ws.next()).await
    {
        let (header, used) = atp_data::cbor::from_slice_prefix(&b).unwrap();
        let body = atp_data::cbor::from_slice(&b[used..]).unwrap();
        if header.get("t").and_then(atp_data::Value::as_str) == Some("#account")
            && body.get("did").and_then(atp_data::Value::as_str) == Some(did)
        {
            out.push(body);
        }
    }
    out
}

/// `(active, status)` of an `#account` body.
fn active_status(body: &atp_data::Value) -> (bool, Option<String>) {
    let active = match body.get("active") {
        Some(atp_data::Value::Bool(b)) => *b,
        other => panic!("active: {other:?}"),
    };
    let status = body
        .get("status")
        .and_then(atp_data::Value::as_str)
        .map(str::to_owned);
    (active, status)
}

#[tokio::test]
async fn every_admin_endpoint_refuses_missing_or_wrong_credentials() {
    let (_dir, server) = start(&[]).await;
    let client = reqwest::Client::new();
    let alice = create_account(&client, &server, "alice").await;
    let queries = [
        "getAccountInfo",
        "getAccountInfos",
        "searchAccounts",
        "getInviteCodes",
        "getSubjectStatus",
    ];
    let procedures = [
        "disableInviteCodes",
        "disableAccountInvites",
        "enableAccountInvites",
        "updateAccountHandle",
        "updateAccountPassword",
        "updateSubjectStatus",
        "deleteAccount",
    ];
    let params = [("did", alice.did.as_str()), ("dids", alice.did.as_str())];
    for method in queries {
        let nsid = format!("com.atproto.admin.{method}");
        let none = get(&client, &server.xrpc(&nsid), &params).await;
        assert_eq!(
            (none.status, none.error()),
            (401, "AuthenticationRequired"),
            "{nsid}"
        );
        let wrong = admin_get_as(&server, "wrong", &nsid, &params).await;
        assert_eq!(wrong.status, 401, "{nsid} with a wrong password");
        let bearer = client
            .get(url(&server, &nsid, &params))
            .bearer_auth(&alice.access)
            .send()
            .await
            .unwrap();
        assert_eq!(bearer.status(), 401, "{nsid} with a user token");
    }
    let body = json!({"did": alice.did, "account": alice.did, "handle": "x.test", "password": "p",
        "subject": repo_ref(&alice.did), "takedown": {"applied": true}});
    for method in procedures {
        let nsid = format!("com.atproto.admin.{method}");
        let none = post(&client, &server.xrpc(&nsid), None, &body).await;
        assert_eq!(
            (none.status, none.error()),
            (401, "AuthenticationRequired"),
            "{nsid}"
        );
        let user = post(&client, &server.xrpc(&nsid), Some(&alice.access), &body).await;
        assert_eq!(user.status, 401, "{nsid} with a user token");
    }
    // Nothing happened: alice still logs in with her password and is active.
    login(&client, &server, "alice.test", "hunter22")
        .await
        .ok("login");
}

#[tokio::test]
async fn account_views_search_and_invite_codes() {
    let (_dir, server) = start(&[("PDS_INVITE_REQUIRED", "true")]).await;
    let client = reqwest::Client::new();
    let made = admin_post(
        &server,
        "com.atproto.server.createInviteCodes",
        json!({"codeCount": 3, "useCount": 2}),
    )
    .await
    .ok("createInviteCodes");
    let codes: Vec<String> = made["codes"][0]["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    let mut dids = Vec::new();
    for (name, code) in [
        ("alice", &codes[0]),
        ("bob", &codes[0]),
        ("carol", &codes[1]),
    ] {
        let body = post(
            &client,
            &server.xrpc("com.atproto.server.createAccount"),
            None,
            &json!({"handle": format!("{name}.test"), "email": format!("{name}@example.com"),
                "password": "hunter22", "inviteCode": code}),
        )
        .await
        .ok("createAccount");
        dids.push(body["did"].as_str().unwrap().to_owned());
    }

    let info = admin_get(
        &server,
        "com.atproto.admin.getAccountInfo",
        &[("did", &dids[0])],
    )
    .await
    .ok("getAccountInfo");
    assert_eq!(info["did"], dids[0]);
    assert_eq!(info["handle"], "alice.test");
    assert_eq!(info["email"], "alice@example.com");
    assert_eq!(info["invitesDisabled"], false);
    assert_eq!(info["invites"], json!([]));
    assert!(info["indexedAt"].as_str().unwrap().ends_with('Z'), "{info}");
    assert!(info.get("emailConfirmedAt").is_none() && info.get("deactivatedAt").is_none());
    assert_eq!(info["invitedBy"]["code"], codes[0].as_str());
    assert_eq!(info["invitedBy"]["forAccount"], "admin");
    assert_eq!(info["invitedBy"]["uses"].as_array().unwrap().len(), 2);

    let unknown = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa";
    let missing = admin_get(
        &server,
        "com.atproto.admin.getAccountInfo",
        &[("did", unknown)],
    )
    .await;
    assert_eq!((missing.status, missing.error()), (400, "NotFound"));
    let bad = admin_get(
        &server,
        "com.atproto.admin.getAccountInfo",
        &[("did", "nope")],
    )
    .await;
    assert_eq!((bad.status, bad.error()), (400, "InvalidRequest"));

    let infos = admin_get(
        &server,
        "com.atproto.admin.getAccountInfos",
        &[("dids", &dids[2]), ("dids", unknown), ("dids", &dids[0])],
    )
    .await
    .ok("getAccountInfos");
    let got = strs(&infos["infos"], "did");
    assert_eq!(got, vec![dids[2].as_str(), dids[0].as_str()]);

    // searchAccounts: by email fragment, and paged by DID.
    let found = admin_get(
        &server,
        "com.atproto.admin.searchAccounts",
        &[("email", "BOB@")],
    )
    .await
    .ok("searchAccounts");
    let handles = strs(&found["accounts"], "handle");
    assert_eq!(handles, vec!["bob.test"]);
    let mut sorted = dids.clone();
    sorted.sort();
    let page = admin_get(
        &server,
        "com.atproto.admin.searchAccounts",
        &[("limit", "2")],
    )
    .await
    .ok("searchAccounts page 1");
    let first = strs(&page["accounts"], "did");
    assert_eq!(first, vec![sorted[0].as_str(), sorted[1].as_str()]);
    let cursor = page["cursor"].as_str().unwrap().to_owned();
    let page = admin_get(
        &server,
        "com.atproto.admin.searchAccounts",
        &[("limit", "2"), ("cursor", &cursor)],
    )
    .await
    .ok("searchAccounts page 2");
    assert_eq!(page["accounts"][0]["did"], sorted[2].as_str());
    assert!(page.get("cursor").is_none(), "{page}");

    // getInviteCodes: recent first, by usage, paged; uses listed.
    let all = admin_get(
        &server,
        "com.atproto.admin.getInviteCodes",
        &[("sort", "usage")],
    )
    .await
    .ok("getInviteCodes usage");
    let by_usage = strs(&all["codes"], "code");
    assert_eq!(by_usage.len(), 3);
    assert_eq!(
        (by_usage[0], by_usage[1]),
        (codes[0].as_str(), codes[1].as_str())
    );
    assert_eq!(all["codes"][0]["uses"].as_array().unwrap().len(), 2);
    assert_eq!(all["codes"][0]["available"], 2);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut params = vec![("limit", "1".to_owned())];
        if let Some(c) = &cursor {
            params.push(("cursor", c.clone()));
        }
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page = admin_get(&server, "com.atproto.admin.getInviteCodes", &params)
            .await
            .ok("getInviteCodes page");
        let codes = page["codes"].as_array().unwrap();
        if codes.is_empty() {
            break;
        }
        seen.push(codes[0]["code"].as_str().unwrap().to_owned());
        cursor = Some(page["cursor"].as_str().unwrap().to_owned());
    }
    let mut expected = codes.clone();
    expected.sort();
    let mut sorted_seen = seen.clone();
    sorted_seen.sort();
    assert_eq!(sorted_seen, expected, "paging visits every code once");
    let bad = admin_get(
        &server,
        "com.atproto.admin.getInviteCodes",
        &[("sort", "random")],
    )
    .await;
    assert_eq!((bad.status, bad.error()), (400, "InvalidRequest"));

    // disableInviteCodes: by code; "admin" cannot be disabled by account.
    admin_post(
        &server,
        "com.atproto.admin.disableInviteCodes",
        json!({"codes": [codes[2]]}),
    )
    .await
    .ok("disableInviteCodes");
    let refused = admin_post(
        &server,
        "com.atproto.admin.disableInviteCodes",
        json!({"accounts": ["admin"]}),
    )
    .await;
    assert_eq!((refused.status, refused.error()), (400, "InvalidRequest"));
    let after = admin_get(&server, "com.atproto.admin.getInviteCodes", &[])
        .await
        .ok("getInviteCodes");
    for c in after["codes"].as_array().unwrap() {
        assert_eq!(c["disabled"], c["code"] == codes[2].as_str(), "{c}");
    }
    let denied = post(
        &client,
        &server.xrpc("com.atproto.server.createAccount"),
        None,
        &json!({"handle": "dave.test", "email": "dave@example.com", "password": "p", "inviteCode": codes[2]}),
    )
    .await;
    assert_eq!((denied.status, denied.error()), (400, "InvalidInviteCode"));

    // disable/enableAccountInvites show in the account view.
    for (method, disabled) in [
        ("disableAccountInvites", true),
        ("enableAccountInvites", false),
    ] {
        admin_post(
            &server,
            &format!("com.atproto.admin.{method}"),
            json!({"account": dids[1], "note": "spam"}),
        )
        .await
        .ok(method);
        let info = admin_get(
            &server,
            "com.atproto.admin.getAccountInfo",
            &[("did", &dids[1])],
        )
        .await
        .ok("getAccountInfo");
        assert_eq!(info["invitesDisabled"], disabled, "after {method}");
    }
}

#[tokio::test]
async fn handle_and_password_changes() {
    let (_dir, server) = start(&[]).await;
    let client = reqwest::Client::new();
    let alice = create_account(&client, &server, "alice").await;
    let bob = create_account(&client, &server, "bob").await;
    let session = login(&client, &server, "alice.test", "hunter22")
        .await
        .ok("login");

    admin_post(
        &server,
        "com.atproto.admin.updateAccountHandle",
        json!({"did": alice.did, "handle": "alicia.test"}),
    )
    .await
    .ok("updateAccountHandle");
    let resolved = get(
        &client,
        &server.xrpc("com.atproto.identity.resolveHandle"),
        &[("handle", "alicia.test")],
    )
    .await
    .ok("resolveHandle");
    assert_eq!(resolved["did"], alice.did);
    let doc: Value = reqwest::get(format!(
        "http://127.0.0.1:{}/{}",
        server.plc_port, alice.did
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        doc["alsoKnownAs"][0], "at://alicia.test",
        "the PLC document follows"
    );
    let taken = admin_post(
        &server,
        "com.atproto.admin.updateAccountHandle",
        json!({"did": alice.did, "handle": "bob.test"}),
    )
    .await;
    assert_eq!(taken.status, 400, "{:?}", taken.body);
    let unknown = admin_post(
        &server,
        "com.atproto.admin.updateAccountHandle",
        json!({"did": "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", "handle": "zed.test"}),
    )
    .await;
    assert_eq!((unknown.status, unknown.error()), (400, "NotFound"));

    admin_post(
        &server,
        "com.atproto.admin.updateAccountPassword",
        json!({"did": alice.did, "password": "new-password"}),
    )
    .await
    .ok("updateAccountPassword");
    let old = login(&client, &server, "alicia.test", "hunter22").await;
    assert_eq!(old.status, 401);
    login(&client, &server, "alicia.test", "new-password")
        .await
        .ok("login with the new password");
    let refresh = post(
        &client,
        &server.xrpc("com.atproto.server.refreshSession"),
        Some(session["refreshJwt"].as_str().unwrap()),
        &json!({}),
    )
    .await;
    assert_eq!(
        refresh.status, 400,
        "the old session is revoked: {:?}",
        refresh.body
    );
    let unknown = admin_post(
        &server,
        "com.atproto.admin.updateAccountPassword",
        json!({"did": "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", "password": "x"}),
    )
    .await;
    assert_eq!((unknown.status, unknown.error()), (400, "NotFound"));
    login(&client, &server, "bob.test", "hunter22")
        .await
        .ok("bob is untouched");
    let _ = bob;
}

/// Creates a post with an image blob; returns (record uri, record cid, blob cid).
async fn post_with_blob(
    client: &reqwest::Client,
    server: &Server,
    account: &Account,
) -> (String, String, String) {
    let blob = post_bytes(
        client,
        &server.xrpc("com.atproto.repo.uploadBlob"),
        Some(&account.access),
        "image/png",
        b"not really a png".to_vec(),
    )
    .await
    .ok("uploadBlob");
    let blob = blob["blob"].clone();
    let record = json!({"$type": "app.bsky.feed.post", "text": "hi", "createdAt": "2024-01-01T00:00:00.000Z",
        "embed": {"$type": "app.bsky.embed.images", "images": [{"alt": "", "image": blob}]}});
    let out = post(
        client,
        &server.xrpc("com.atproto.repo.createRecord"),
        Some(&account.access),
        &json!({"repo": account.did, "collection": "app.bsky.feed.post", "record": record}),
    )
    .await
    .ok("createRecord");
    (
        out["uri"].as_str().unwrap().to_owned(),
        out["cid"].as_str().unwrap().to_owned(),
        blob["ref"]["$link"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn account_takedown_blocks_login_reads_and_exports_and_is_announced() {
    let (_dir, server) = start(&[]).await;
    let client = reqwest::Client::new();
    let alice = create_account(&client, &server, "alice").await;
    let (uri, _, blob) = post_with_blob(&client, &server, &alice).await;
    let rkey = uri.rsplit('/').next().unwrap().to_owned();
    let session = login(&client, &server, "alice.test", "hunter22")
        .await
        .ok("login");
    let did = alice.did.as_str();
    let reads = [
        ("com.atproto.sync.getRepo", vec![("did", did)]),
        ("com.atproto.sync.getLatestCommit", vec![("did", did)]),
        (
            "com.atproto.sync.getRecord",
            vec![
                ("did", did),
                ("collection", "app.bsky.feed.post"),
                ("rkey", &rkey),
            ],
        ),
        ("com.atproto.sync.listBlobs", vec![("did", did)]),
        (
            "com.atproto.sync.getBlob",
            vec![("did", did), ("cid", &blob)],
        ),
    ];

    let out = admin_post(
        &server,
        "com.atproto.admin.updateSubjectStatus",
        json!({"subject": repo_ref(did), "takedown": {"applied": true, "ref": "ticket-7"}}),
    )
    .await
    .ok("updateSubjectStatus");
    assert_eq!(
        out,
        json!({"subject": repo_ref(did), "takedown": {"applied": true, "ref": "ticket-7"}})
    );
    let status = admin_get(
        &server,
        "com.atproto.admin.getSubjectStatus",
        &[("did", did)],
    )
    .await
    .ok("getSubjectStatus");
    assert_eq!(
        status,
        json!({"subject": repo_ref(did), "takedown": {"applied": true, "ref": "ticket-7"},
        "deactivated": {"applied": false}})
    );

    let denied = login(&client, &server, "alice.test", "hunter22").await;
    assert_eq!((denied.status, denied.error()), (401, "AccountTakedown"));
    let refresh = post(
        &client,
        &server.xrpc("com.atproto.server.refreshSession"),
        Some(session["refreshJwt"].as_str().unwrap()),
        &json!({}),
    )
    .await;
    assert_ne!(refresh.status, 200, "refresh tokens are revoked");
    for (method, params) in &reads {
        let r = get(&client, &server.xrpc(method), params).await;
        assert_eq!((r.status, r.error()), (400, "RepoTakendown"), "{method}");
    }
    let write = post(
        &client,
        &server.xrpc("com.atproto.repo.createRecord"),
        Some(&alice.access),
        &json!({"repo": did, "collection": "app.bsky.feed.post",
            "record": {"$type": "app.bsky.feed.post", "text": "x", "createdAt": "2024-01-01T00:00:00.000Z"}}),
    )
    .await;
    assert_eq!(
        (write.status, write.error()),
        (401, "AccountTakedown"),
        "a write with an earlier token"
    );
    let repo_status = get(
        &client,
        &server.xrpc("com.atproto.sync.getRepoStatus"),
        &[("did", did)],
    )
    .await
    .ok("getRepoStatus");
    assert_eq!(
        repo_status,
        json!({"did": did, "active": false, "status": "takendown"})
    );
    let list = get(
        &client,
        &server.xrpc("com.atproto.repo.listRecords"),
        &[("repo", did), ("collection", "app.bsky.feed.post")],
    )
    .await;
    assert_eq!(list.status, 400, "listRecords of a taken-down repo");
    let record = get(
        &client,
        &server.xrpc("com.atproto.repo.getRecord"),
        &[
            ("repo", did),
            ("collection", "app.bsky.feed.post"),
            ("rkey", &rkey),
        ],
    )
    .await;
    assert_eq!(record.status, 400, "getRecord of a taken-down repo");

    admin_post(
        &server,
        "com.atproto.admin.updateSubjectStatus",
        json!({"subject": repo_ref(did), "takedown": {"applied": false}}),
    )
    .await
    .ok("lift the takedown");
    login(&client, &server, "alice.test", "hunter22")
        .await
        .ok("login after the takedown is lifted");
    for (method, params) in &reads {
        let r = get(&client, &server.xrpc(method), params).await;
        assert_eq!(
            r.status, 200,
            "{method} after the takedown is lifted: {:?}",
            r.body
        );
    }
    let status = admin_get(
        &server,
        "com.atproto.admin.getSubjectStatus",
        &[("did", did)],
    )
    .await
    .ok("getSubjectStatus");
    assert_eq!(status["takedown"], json!({"applied": false}));

    // A takedown without a reference gets the current time as its reference.
    admin_post(
        &server,
        "com.atproto.admin.updateSubjectStatus",
        json!({"subject": repo_ref(did), "takedown": {"applied": true}}),
    )
    .await
    .ok("takedown without ref");
    let status = admin_get(
        &server,
        "com.atproto.admin.getSubjectStatus",
        &[("did", did)],
    )
    .await
    .ok("getSubjectStatus");
    assert!(
        chrono::DateTime::parse_from_rfc3339(status["takedown"]["ref"].as_str().unwrap()).is_ok(),
        "{status}"
    );
    // Deactivation through the admin API, then everything lifted.
    admin_post(&server, "com.atproto.admin.updateSubjectStatus",
        json!({"subject": repo_ref(did), "takedown": {"applied": false}, "deactivated": {"applied": true}}))
        .await
        .ok("deactivate");
    let info = admin_get(&server, "com.atproto.admin.getAccountInfo", &[("did", did)])
        .await
        .ok("getAccountInfo");
    assert!(info["deactivatedAt"].is_string(), "{info}");
    admin_post(
        &server,
        "com.atproto.admin.updateSubjectStatus",
        json!({"subject": repo_ref(did), "deactivated": {"applied": false}}),
    )
    .await
    .ok("reactivate");

    let events: Vec<(bool, Option<String>)> = account_events(&server, did)
        .await
        .iter()
        .map(active_status)
        .collect();
    let s = |v: &str| Some(v.to_owned());
    assert_eq!(
        events,
        vec![
            (true, None),              // creation
            (false, s("takendown")),   // takedown
            (true, None),              // lifted
            (false, s("takendown")),   // takedown without ref
            (false, s("deactivated")), // lifted, deactivated
            (true, None),              // reactivated
        ]
    );
}

#[tokio::test]
async fn record_and_blob_takedowns_hide_only_their_subject() {
    let (_dir, server) = start(&[]).await;
    let client = reqwest::Client::new();
    let alice = create_account(&client, &server, "alice").await;
    let did = alice.did.as_str();
    let (uri, cid, blob) = post_with_blob(&client, &server, &alice).await;
    let rkey = uri.rsplit('/').next().unwrap().to_owned();
    let strong = json!({"$type": "com.atproto.repo.strongRef", "uri": uri, "cid": cid});
    let blob_ref = json!({"$type": "com.atproto.admin.defs#repoBlobRef", "did": did, "cid": blob});
    let get_record = [
        ("repo", did),
        ("collection", "app.bsky.feed.post"),
        ("rkey", rkey.as_str()),
    ];
    let sync_record = [
        ("did", did),
        ("collection", "app.bsky.feed.post"),
        ("rkey", rkey.as_str()),
    ];
    let list = [("repo", did), ("collection", "app.bsky.feed.post")];

    let status = admin_get(
        &server,
        "com.atproto.admin.getSubjectStatus",
        &[("uri", &uri)],
    )
    .await
    .ok("record status");
    assert_eq!(
        status,
        json!({"subject": strong, "takedown": {"applied": false}})
    );
    admin_post(
        &server,
        "com.atproto.admin.updateSubjectStatus",
        json!({"subject": strong, "takedown": {"applied": true, "ref": "r-1"}}),
    )
    .await
    .ok("record takedown");
    let status = admin_get(
        &server,
        "com.atproto.admin.getSubjectStatus",
        &[("uri", &uri)],
    )
    .await
    .ok("record status");
    assert_eq!(status["takedown"], json!({"applied": true, "ref": "r-1"}));
    let r = get(
        &client,
        &server.xrpc("com.atproto.repo.getRecord"),
        &get_record,
    )
    .await;
    assert_eq!((r.status, r.error()), (400, "RecordNotFound"));
    let r = get(
        &client,
        &server.xrpc("com.atproto.sync.getRecord"),
        &sync_record,
    )
    .await;
    assert_eq!((r.status, r.error()), (400, "RecordNotFound"));
    let r = get(&client, &server.xrpc("com.atproto.repo.listRecords"), &list)
        .await
        .ok("listRecords");
    assert_eq!(r["records"], json!([]));
    // The account itself is untouched: login and export work.
    login(&client, &server, "alice.test", "hunter22")
        .await
        .ok("login");
    get(
        &client,
        &server.xrpc("com.atproto.sync.getLatestCommit"),
        &[("did", did)],
    )
    .await
    .ok("getLatestCommit");
    admin_post(
        &server,
        "com.atproto.admin.updateSubjectStatus",
        json!({"subject": strong, "takedown": {"applied": false}}),
    )
    .await
    .ok("record takedown lifted");
    get(
        &client,
        &server.xrpc("com.atproto.repo.getRecord"),
        &get_record,
    )
    .await
    .ok("getRecord");
    let r = get(&client, &server.xrpc("com.atproto.repo.listRecords"), &list)
        .await
        .ok("listRecords");
    assert_eq!(r["records"].as_array().unwrap().len(), 1);
    let r = client
        .get(url(&server, "com.atproto.sync.getRecord", &sync_record))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let blob_params = [("did", did), ("cid", blob.as_str())];
    admin_post(
        &server,
        "com.atproto.admin.updateSubjectStatus",
        json!({"subject": blob_ref, "takedown": {"applied": true, "ref": "b-1"}}),
    )
    .await
    .ok("blob takedown");
    let status = admin_get(
        &server,
        "com.atproto.admin.getSubjectStatus",
        &[("did", did), ("blob", &blob)],
    )
    .await
    .ok("blob status");
    assert_eq!(
        status,
        json!({"subject": {"$type": "com.atproto.admin.defs#repoBlobRef", "did": did, "cid": blob},
        "takedown": {"applied": true, "ref": "b-1"}})
    );
    let r = get(
        &client,
        &server.xrpc("com.atproto.sync.getBlob"),
        &blob_params,
    )
    .await;
    assert_eq!((r.status, r.error()), (400, "BlobNotFound"));
    get(
        &client,
        &server.xrpc("com.atproto.repo.getRecord"),
        &get_record,
    )
    .await
    .ok("the record stays");
    admin_post(
        &server,
        "com.atproto.admin.updateSubjectStatus",
        json!({"subject": blob_ref, "takedown": {"applied": false}}),
    )
    .await
    .ok("blob takedown lifted");
    let r = client
        .get(url(&server, "com.atproto.sync.getBlob", &blob_params))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"not really a png");

    // Bad and unknown subjects.
    let r = admin_post(
        &server,
        "com.atproto.admin.updateSubjectStatus",
        json!({"subject": {"did": did}, "takedown": {"applied": true}}),
    )
    .await;
    assert_eq!((r.status, r.error()), (400, "InvalidRequest"));
    let r = admin_get(&server, "com.atproto.admin.getSubjectStatus", &[]).await;
    assert_eq!((r.status, r.error()), (400, "InvalidRequest"));
    let r = admin_get(
        &server,
        "com.atproto.admin.getSubjectStatus",
        &[("blob", &blob)],
    )
    .await;
    assert_eq!((r.status, r.error()), (400, "InvalidRequest"));
    let gone = format!("at://{did}/app.bsky.feed.post/3aaaaaaaaaaaa");
    let r = admin_get(
        &server,
        "com.atproto.admin.getSubjectStatus",
        &[("uri", &gone)],
    )
    .await;
    assert_eq!((r.status, r.error()), (400, "NotFound"));
    let r = admin_get(
        &server,
        "com.atproto.admin.getSubjectStatus",
        &[("did", "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa")],
    )
    .await;
    assert_eq!((r.status, r.error()), (400, "NotFound"));
}

#[tokio::test]
async fn delete_account_removes_rows_files_and_events() {
    let (dir, server) = start(&[]).await;
    let client = reqwest::Client::new();
    let alice = create_account(&client, &server, "alice").await;
    let bob = create_account(&client, &server, "bob").await;
    post_with_blob(&client, &server, &alice).await;
    post_with_blob(&client, &server, &bob).await;
    let did = alice.did.as_str();
    let key_file = dir
        .path()
        .join("keys")
        .join(format!("{}.key", did.replace(':', "_")));
    let blob_dir = dir.path().join("blobs").join(did.replace(':', "_"));
    assert!(key_file.exists() && blob_dir.exists());

    admin_post(
        &server,
        "com.atproto.admin.deleteAccount",
        json!({"did": did}),
    )
    .await
    .ok("deleteAccount");
    assert!(!key_file.exists(), "the signing key file is deleted");
    assert!(!blob_dir.exists(), "the blob files are deleted");
    let r = admin_get(&server, "com.atproto.admin.getAccountInfo", &[("did", did)]).await;
    assert_eq!((r.status, r.error()), (400, "NotFound"));
    let r = get(
        &client,
        &server.xrpc("com.atproto.sync.getRepoStatus"),
        &[("did", did)],
    )
    .await;
    assert_eq!((r.status, r.error()), (400, "RepoNotFound"));
    assert_eq!(
        login(&client, &server, "alice.test", "hunter22")
            .await
            .status,
        401
    );
    let again = admin_post(
        &server,
        "com.atproto.admin.deleteAccount",
        json!({"did": did}),
    )
    .await;
    assert_eq!((again.status, again.error()), (400, "NotFound"));

    // The log keeps only the deletion for alice; bob is untouched.
    let events: Vec<(bool, Option<String>)> = account_events(&server, did)
        .await
        .iter()
        .map(active_status)
        .collect();
    assert_eq!(events, vec![(false, Some("deleted".to_owned()))]);
    assert_eq!(account_events(&server, &bob.did).await.len(), 1);
    login(&client, &server, "bob.test", "hunter22")
        .await
        .ok("bob logs in");
    let r = client
        .get(url(
            &server,
            "com.atproto.sync.getRepo",
            &[("did", &bob.did)],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
