//! `com.atproto.admin.*` against the real `pds serve` binary: basic-auth refusal on every
//! endpoint; account views, search and invite codes; handle and password changes; takedowns of
//! accounts, records and blobs with their effects on login, reads, exports and blobs and the
//! `#account` events on the firehose; deletion (rows, files, events).

mod harness;

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use harness::{Account, Reply, Server, create_account, files_under, get, login, post, post_bytes};

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

/// Who sends a request.
#[derive(Debug, Clone, Copy)]
enum As<'a> {
    /// No credentials.
    Anyone,
    /// An access token.
    Token(&'a str),
    /// HTTP basic auth as `admin` with this password.
    Admin(&'a str),
    /// This raw `Authorization` header.
    Header(&'a str),
}

/// A GET as `who`, with repeated keys allowed; the raw response.
async fn send_as(
    server: &Server,
    who: As<'_>,
    method: &str,
    params: &[(&str, &str)],
) -> reqwest::Response {
    let req = reqwest::Client::new().get(url(server, method, params));
    let req = match who {
        As::Anyone => req,
        As::Token(token) => req.bearer_auth(token),
        As::Admin(password) => req.basic_auth("admin", Some(password)),
        As::Header(value) => req.header("authorization", value),
    };
    req.send().await.unwrap()
}

/// A GET as `who`, with repeated keys allowed.
async fn get_as(server: &Server, who: As<'_>, method: &str, params: &[(&str, &str)]) -> Reply {
    Reply::read(send_as(server, who, method, params).await).await
}

/// A GET without credentials.
async fn anyone(server: &Server, method: &str, params: &[(&str, &str)]) -> Reply {
    get_as(server, As::Anyone, method, params).await
}

/// The status, content type and body of a GET as `who`.
async fn bytes_as(
    server: &Server,
    who: As<'_>,
    method: &str,
    params: &[(&str, &str)],
) -> (u16, String, Vec<u8>) {
    let res = send_as(server, who, method, params).await;
    let status = res.status().as_u16();
    let mime = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, mime, res.bytes().await.unwrap().to_vec())
}

async fn admin_get(server: &Server, method: &str, params: &[(&str, &str)]) -> Reply {
    get_as(server, As::Admin(PASSWORD), method, params).await
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

/// `updateSubjectStatus` of `subject` with these status fields (`takedown`, `deactivated`), as
/// the administrator; the answer.
async fn update_status(server: &Server, subject: &Value, fields: Value) -> Value {
    let mut body = fields;
    body["subject"] = subject.clone();
    admin_post(server, "com.atproto.admin.updateSubjectStatus", body)
        .await
        .ok("updateSubjectStatus")
}

/// `deleteAccount` of `did`, as the administrator.
async fn delete_account(server: &Server, did: &str) -> Reply {
    admin_post(
        server,
        "com.atproto.admin.deleteAccount",
        json!({"did": did}),
    )
    .await
}

/// `getSubjectStatus` with these parameters, as the administrator.
async fn subject_status(server: &Server, params: &[(&str, &str)]) -> Reply {
    admin_get(server, "com.atproto.admin.getSubjectStatus", params).await
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
        let wrong = get_as(&server, As::Admin("wrong"), &nsid, &params).await;
        assert_eq!(wrong.status, 401, "{nsid} with a wrong password");
        let bearer = get_as(&server, As::Token(&alice.access), &nsid, &params).await;
        assert_eq!(bearer.status, 401, "{nsid} with a user token");
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

    let out = update_status(
        &server,
        &repo_ref(did),
        json!({"takedown": {"applied": true, "ref": "ticket-7"}}),
    )
    .await;
    assert_eq!(
        out,
        json!({"subject": repo_ref(did), "takedown": {"applied": true, "ref": "ticket-7"}})
    );
    let status = subject_status(&server, &[("did", did)])
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

    update_status(
        &server,
        &repo_ref(did),
        json!({"takedown": {"applied": false}}),
    )
    .await;
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
    let status = subject_status(&server, &[("did", did)])
        .await
        .ok("getSubjectStatus");
    assert_eq!(status["takedown"], json!({"applied": false}));

    // A takedown without a reference gets the current time as its reference.
    update_status(
        &server,
        &repo_ref(did),
        json!({"takedown": {"applied": true}}),
    )
    .await;
    let status = subject_status(&server, &[("did", did)])
        .await
        .ok("getSubjectStatus");
    assert!(
        chrono::DateTime::parse_from_rfc3339(status["takedown"]["ref"].as_str().unwrap()).is_ok(),
        "{status}"
    );
    // Deactivation through the admin API, then everything lifted.
    update_status(
        &server,
        &repo_ref(did),
        json!({"takedown": {"applied": false}, "deactivated": {"applied": true}}),
    )
    .await;
    let info = admin_get(&server, "com.atproto.admin.getAccountInfo", &[("did", did)])
        .await
        .ok("getAccountInfo");
    assert!(info["deactivatedAt"].is_string(), "{info}");
    update_status(
        &server,
        &repo_ref(did),
        json!({"deactivated": {"applied": false}}),
    )
    .await;

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

    let status = subject_status(&server, &[("uri", &uri)])
        .await
        .ok("record status");
    assert_eq!(
        status,
        json!({"subject": strong, "takedown": {"applied": false}})
    );
    update_status(
        &server,
        &strong,
        json!({"takedown": {"applied": true, "ref": "r-1"}}),
    )
    .await;
    let status = subject_status(&server, &[("uri", &uri)])
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
    update_status(&server, &strong, json!({"takedown": {"applied": false}})).await;
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
    update_status(
        &server,
        &blob_ref,
        json!({"takedown": {"applied": true, "ref": "b-1"}}),
    )
    .await;
    let status = subject_status(&server, &[("did", did), ("blob", &blob)])
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
    update_status(&server, &blob_ref, json!({"takedown": {"applied": false}})).await;
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
    let r = subject_status(&server, &[]).await;
    assert_eq!((r.status, r.error()), (400, "InvalidRequest"));
    let r = subject_status(&server, &[("blob", &blob)]).await;
    assert_eq!((r.status, r.error()), (400, "InvalidRequest"));
    let gone = format!("at://{did}/app.bsky.feed.post/3aaaaaaaaaaaa");
    let r = subject_status(&server, &[("uri", &gone)]).await;
    assert_eq!((r.status, r.error()), (400, "NotFound"));
    let r = subject_status(&server, &[("did", "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa")]).await;
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

    delete_account(&server, did).await.ok("deleteAccount");
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
    let again = delete_account(&server, did).await;
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

/// `(status, error, message)` of a reply.
fn failure(r: &Reply) -> (u16, &str, &str) {
    (
        r.status,
        r.error(),
        r.body["message"].as_str().unwrap_or(""),
    )
}

#[tokio::test]
async fn owner_and_admin_read_an_unavailable_repository_through_sync() {
    let (_dir, server) = start(&[]).await;
    let client = reqwest::Client::new();
    let alice = create_account(&client, &server, "alice").await;
    let bob = create_account(&client, &server, "bob").await;
    let (uri, _, blob) = post_with_blob(&client, &server, &alice).await;
    let rkey = uri.rsplit('/').next().unwrap().to_owned();
    let did = alice.did.as_str();
    let by_did = [("did", did)];
    let commit = anyone(&server, "com.atproto.sync.getLatestCommit", &by_did)
        .await
        .ok("getLatestCommit")["cid"]
        .as_str()
        .unwrap()
        .to_owned();
    let export = bytes_as(&server, As::Anyone, "com.atproto.sync.getRepo", &by_did).await;
    assert_eq!(export.0, 200);
    let post = ("collection", "app.bsky.feed.post");
    let reads: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("getRepo", vec![("did", did)]),
        ("getCheckout", vec![("did", did)]),
        ("getLatestCommit", vec![("did", did)]),
        ("getHead", vec![("did", did)]),
        ("getRecord", vec![("did", did), post, ("rkey", &rkey)]),
        ("getBlocks", vec![("did", did), ("cids", &commit)]),
        ("listBlobs", vec![("did", did)]),
        ("getBlob", vec![("did", did), ("cid", &blob)]),
    ];
    let statuses = [
        (
            json!({"takedown": {"applied": true}}),
            "RepoTakendown",
            "takendown",
        ),
        (
            json!({"takedown": {"applied": false}, "deactivated": {"applied": true}}),
            "RepoDeactivated",
            "deactivated",
        ),
    ];
    for (change, refused, status) in statuses {
        update_status(&server, &repo_ref(did), change).await;
        for (method, params) in &reads {
            let method = format!("com.atproto.sync.{method}");
            for who in [As::Anyone, As::Token(&bob.access)] {
                let r = get_as(&server, who, &method, params).await;
                assert_eq!((r.status, r.error()), (400, refused), "{method} as {who:?}");
            }
            // The owner (with a token from before) and the administrator still read it.
            for who in [As::Token(&alice.access), As::Admin(PASSWORD)] {
                let r = get_as(&server, who, &method, params).await;
                assert_eq!(r.status, 200, "{method} as {who:?}: {}", r.body);
            }
        }
        let mine = bytes_as(
            &server,
            As::Token(&alice.access),
            "com.atproto.sync.getRepo",
            &by_did,
        )
        .await;
        assert_eq!(mine, export, "the owner's export while {status}");
        let (code, _, bytes) = bytes_as(
            &server,
            As::Admin(PASSWORD),
            "com.atproto.sync.getBlob",
            &reads[7].1,
        )
        .await;
        assert_eq!(
            (code, bytes.as_slice()),
            (200, b"not really a png".as_slice())
        );
        // Credentials that do not verify are refused, never taken for nobody's.
        for (who, expected) in [
            (As::Admin("wrong"), (401, "AuthenticationRequired")),
            (As::Token("not-a-token"), (400, "InvalidToken")),
            (As::Header("Negotiate abc"), (401, "AuthenticationRequired")),
        ] {
            let r = get_as(&server, who, "com.atproto.sync.getLatestCommit", &by_did).await;
            assert_eq!((r.status, r.error()), expected, "{who:?}");
        }
        let r = anyone(&server, "com.atproto.sync.getRepoStatus", &by_did)
            .await
            .ok("getRepoStatus");
        assert_eq!(r, json!({"did": did, "active": false, "status": status}));

        // The repo reads, as the reference: getRecord and listRecords see no repository here
        // (whoever asks), describeRepo says why; by DID or handle.
        for repo in [did, "alice.test"] {
            let params = [("repo", repo), post, ("rkey", &rkey)];
            for who in [As::Anyone, As::Token(&alice.access)] {
                let r = get_as(&server, who, "com.atproto.repo.getRecord", &params).await;
                assert_eq!(
                    failure(&r),
                    (400, "InvalidRequest", "Could not locate record"),
                    "getRecord of {repo} as {who:?}"
                );
            }
            let r = anyone(&server, "com.atproto.repo.listRecords", &params[..2]).await;
            let message = format!("Could not find repo: {repo}");
            assert_eq!(failure(&r), (400, "InvalidRequest", message.as_str()));
            let r = anyone(&server, "com.atproto.repo.describeRepo", &params[..1]).await;
            assert_eq!(
                (r.status, r.error()),
                (400, refused),
                "describeRepo of {repo}"
            );
        }
    }
    update_status(
        &server,
        &repo_ref(did),
        json!({"deactivated": {"applied": false}}),
    )
    .await;
    for method in ["getRecord", "listRecords", "describeRepo"] {
        let params = [("repo", did), post, ("rkey", &rkey)];
        let r = anyone(&server, &format!("com.atproto.repo.{method}"), &params).await;
        assert_eq!(r.status, 200, "{method} once active again: {}", r.body);
    }
}

/// A stand-in app view: getRecord answers with the query it got and whether it got credentials.
async fn stub_app_view() -> String {
    use axum::http::{HeaderMap, Uri};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let get_record = |headers: HeaderMap, uri: Uri| async move {
        axum::Json(json!({"uri": "at://from.the/app.view/x", "cid": "none",
            "value": {"query": uri.query(), "credentials": headers.contains_key("authorization")}}))
    };
    let app = axum::Router::new().route(
        "/xrpc/com.atproto.repo.getRecord",
        axum::routing::get(get_record),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

#[tokio::test]
async fn get_record_of_a_repository_not_served_here_asks_the_app_view() {
    let app_view = stub_app_view().await;
    let (_dir, server) = start(&[
        ("PDS_BSKY_APP_VIEW_URL", &app_view),
        ("PDS_BSKY_APP_VIEW_DID", "did:web:appview.test"),
    ])
    .await;
    let client = reqwest::Client::new();
    let alice = create_account(&client, &server, "alice").await;
    let (uri, _, _) = post_with_blob(&client, &server, &alice).await;
    let rkey = uri.rsplit('/').next().unwrap().to_owned();
    let params = |repo| {
        [
            ("repo", repo),
            ("collection", "app.bsky.feed.post"),
            ("rkey", rkey.as_str()),
        ]
    };
    let mine = params(alice.did.as_str());
    let here = anyone(&server, "com.atproto.repo.getRecord", &mine)
        .await
        .ok("getRecord");
    assert_eq!(
        here["uri"],
        uri.as_str(),
        "an active repository is read here"
    );
    update_status(
        &server,
        &repo_ref(&alice.did),
        json!({"deactivated": {"applied": true}}),
    )
    .await;
    let unknown = params("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa");
    for (params, who) in [(mine, As::Token(&alice.access)), (unknown, As::Anyone)] {
        let r = get_as(&server, who, "com.atproto.repo.getRecord", &params)
            .await
            .ok("getRecord from the app view");
        let sent = url(&server, "com.atproto.repo.getRecord", &params);
        let query = sent.split_once('?').unwrap().1;
        assert_eq!(
            (r["uri"].as_str(), &r["value"]),
            (
                Some("at://from.the/app.view/x"),
                &json!({"query": query, "credentials": false})
            ),
            "{params:?}"
        );
    }
}

#[tokio::test]
async fn a_taken_down_account_cannot_write_with_a_token_it_still_holds() {
    let (dir, server) = start(&[]).await;
    let client = reqwest::Client::new();
    let alice = create_account(&client, &server, "alice").await;
    let bob = create_account(&client, &server, "bob").await;
    let upload = |token: &str| {
        let (client, url, token) = (
            client.clone(),
            server.xrpc("com.atproto.repo.uploadBlob"),
            token.to_owned(),
        );
        async move { post_bytes(&client, &url, Some(&token), "image/png", b"png".to_vec()).await }
    };
    update_status(
        &server,
        &repo_ref(&alice.did),
        json!({"takedown": {"applied": true}}),
    )
    .await;
    let taken_down = (401, "AccountTakedown", "Account has been taken down");
    let r = upload(&alice.access).await;
    assert_eq!(failure(&r), taken_down, "uploadBlob");
    let writes = [
        (
            "com.atproto.identity.updateHandle",
            json!({"handle": "alicia.test"}),
        ),
        (
            "com.atproto.server.createAppPassword",
            json!({"name": "app"}),
        ),
    ];
    for (method, body) in &writes {
        let r = post(&client, &server.xrpc(method), Some(&alice.access), body).await;
        assert_eq!(failure(&r), taken_down, "{method}");
    }
    assert!(
        files_under(&dir.path().join("blobs")).is_empty(),
        "no file was kept"
    );
    // Deactivated but not taken down: uploads are allowed (an account moving in needs them).
    update_status(
        &server,
        &repo_ref(&alice.did),
        json!({"takedown": {"applied": false}, "deactivated": {"applied": true}}),
    )
    .await;
    upload(&alice.access)
        .await
        .ok("uploadBlob while deactivated");
    // A deleted account's token.
    delete_account(&server, &bob.did).await.ok("deleteAccount");
    let r = upload(&bob.access).await;
    assert_eq!(failure(&r), (403, "AccountNotFound", "Account not found"));
}

/// The served and the quarantined place of `did`'s blob `cid` under the data directory.
fn blob_places(dir: &Path, did: &str, cid: &str) -> (PathBuf, PathBuf) {
    let (blobs, name) = (dir.join("blobs"), did.replace(':', "_"));
    (
        blobs.join(&name).join(cid),
        blobs.join("quarantine").join(&name).join(cid),
    )
}

/// Waits (up to 15 s) until `done`.
async fn wait_for(what: &str, done: impl Fn() -> bool) {
    for _ in 0..150 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[tokio::test]
async fn a_blob_takedown_quarantines_its_file_and_a_restart_finishes_a_move() {
    let (dir, mut server) = start(&[]).await;
    let client = reqwest::Client::new();
    let alice = create_account(&client, &server, "alice").await;
    let (_, _, blob) = post_with_blob(&client, &server, &alice).await;
    let did = alice.did.as_str();
    let subject = json!({"$type": "com.atproto.admin.defs#repoBlobRef", "did": did, "cid": blob});
    let (served, quarantined) = blob_places(dir.path(), did, &blob);
    let params = [("did", did), ("cid", blob.as_str())];
    let placed = |served: &Path, quarantined: &Path| (served.exists(), quarantined.exists());
    assert_eq!(placed(&served, &quarantined), (true, false));

    update_status(&server, &subject, json!({"takedown": {"applied": true}})).await;
    assert_eq!(placed(&served, &quarantined), (false, true), "quarantined");
    for who in [As::Anyone, As::Token(&alice.access), As::Admin(PASSWORD)] {
        let r = get_as(&server, who, "com.atproto.sync.getBlob", &params).await;
        assert_eq!((r.status, r.error()), (400, "BlobNotFound"), "{who:?}");
    }
    let again = post_bytes(
        &client,
        &server.xrpc("com.atproto.repo.uploadBlob"),
        Some(&alice.access),
        "image/png",
        b"not really a png".to_vec(),
    )
    .await;
    let refused = (
        400,
        "InvalidRequest",
        "Blob has been takendown, cannot re-upload",
    );
    assert_eq!(failure(&again), refused);
    update_status(&server, &subject, json!({"takedown": {"applied": false}})).await;
    assert_eq!(placed(&served, &quarantined), (true, false), "back");
    let (code, _, bytes) = bytes_as(&server, As::Anyone, "com.atproto.sync.getBlob", &params).await;
    assert_eq!(
        (code, bytes.as_slice()),
        (200, b"not really a png".as_slice())
    );

    // A crash after the database changed and before the file moved: the restart (the jobs'
    // first round) finishes the move, either way.
    for (change, served_after) in [("'t-2'", false), ("NULL", true)] {
        server.kill();
        let db = rusqlite::Connection::open(dir.path().join("pds.sqlite")).unwrap();
        db.execute(&format!("UPDATE blob SET takedown_ref = {change}"), [])
            .unwrap();
        drop(db);
        assert_eq!(placed(&served, &quarantined), (!served_after, served_after));
        server.restart().await;
        wait_for("the interrupted move", || {
            placed(&served, &quarantined) == (served_after, !served_after)
        })
        .await;
    }
    let (code, _, _) = bytes_as(&server, As::Anyone, "com.atproto.sync.getBlob", &params).await;
    assert_eq!(code, 200);

    // Deleting the account deletes a quarantined file too.
    update_status(&server, &subject, json!({"takedown": {"applied": true}})).await;
    assert_eq!(placed(&served, &quarantined), (false, true));
    delete_account(&server, did).await.ok("deleteAccount");
    assert_eq!(placed(&served, &quarantined), (false, false));
    assert!(
        !quarantined.parent().unwrap().exists(),
        "the account's quarantine folder is gone"
    );
    assert!(!served.parent().unwrap().exists());
}
