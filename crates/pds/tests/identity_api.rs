//! End to end against the real `pds serve` binary (dev mode, embedded PLC directory on
//! loopback): the identity queries (resolveDid, resolveIdentity, refreshIdentity, resolveHandle),
//! preferences (getPreferences / putPreferences), service-auth tokens (getServiceAuth, verified
//! with `atp-identity` and with the official `@atproto/xrpc-server` verifier), and the
//! `com.atproto.temp` methods (checkSignupQueue, checkHandleAvailability).
//!
//! DIDs that no account owns (another DID claiming a hosted handle, a DID without a handle, a
//! tombstoned DID) are registered directly with the embedded PLC directory over HTTP, signed with
//! keys made here; an account's document is changed behind the server's back with the server's
//! own rotation key (read from `secrets.json`) to exercise the resolver cache.

mod harness;
mod node;

use atp_crypto::{Curve, Keypair};
use atp_identity::DidDocument;
use atp_identity::plc::{PlcData, PlcOp, SignedOp, UnsignedOp};
use atp_identity::resolve::{Limits, PlcClient};
use atp_identity::service_auth::{ExpectedClaims, decode_unverified, verify};
use atp_syntax::{Did, Handle};
use harness::{Account, Reply, Server, create_account, get, post};
use serde_json::{Value, json};

const PERSONAL: &str = "app.bsky.actor.defs#personalDetailsPref";
const DECLARED: &str = "app.bsky.actor.defs#declaredAgePref";
const ADULT: &str = "app.bsky.actor.defs#adultContentPref";
const MUTED: &str = "app.bsky.actor.defs#mutedWordsPref";

fn plc_client(server: &Server) -> PlcClient {
    PlcClient::new(
        &format!("http://127.0.0.1:{}", server.plc_port),
        &Limits::default(),
    )
    .expect("PLC client")
}

/// Registers a new did:plc with the embedded directory: `handle` in `alsoKnownAs` (none when
/// `None`). Returns the DID, its key and its genesis operation.
async fn register_did(server: &Server, handle: Option<&str>) -> (Did, Keypair, SignedOp) {
    let key = Keypair::generate(Curve::K256);
    let placeholder: Handle = "placeholder.test".parse().unwrap();
    let mut op = PlcOp::atproto(
        &key.public_key(),
        &placeholder,
        "https://pds.example.com",
        vec![key.public_key().did_key()],
        None,
    );
    op.also_known_as.clear();
    if let Some(h) = handle {
        op.set_handle(&h.parse().unwrap());
    }
    let signed = UnsignedOp::Operation(op).sign(&key).unwrap();
    let did = signed.did().unwrap();
    plc_client(server).submit(&did, &signed).await.unwrap();
    (did, key, signed)
}

/// Tombstones a DID registered by [`register_did`].
async fn tombstone(server: &Server, did: &Did, key: &Keypair, last: &SignedOp) {
    let op = UnsignedOp::tombstone(&last.cid()).sign(key).unwrap();
    plc_client(server).submit(did, &op).await.unwrap();
}

/// Points a hosted account's PLC document at `handle`, signed with the server's rotation key,
/// without telling the server.
async fn change_handle_behind_the_servers_back(server: &Server, did: &Did, handle: &str) {
    let secrets: Value =
        serde_json::from_slice(&std::fs::read(server.data_dir.join("secrets.json")).unwrap())
            .unwrap();
    let hex = secrets["plcRotationKeyK256PrivateKeyHex"].as_str().unwrap();
    let rotation = Keypair::from_private_hex(Curve::K256, hex).unwrap();
    let client = plc_client(server);
    let last = client.last_operation(did).await.unwrap();
    let data = PlcData::from_op(did, &last.op).unwrap();
    let mut op = PlcOp::update_of(&data, &last.cid());
    op.set_handle(&handle.parse().unwrap());
    let signed = UnsignedOp::Operation(op).sign(&rotation).unwrap();
    client.submit(did, &signed).await.unwrap();
}

fn assert_error(reply: &Reply, status: u16, error: &str, what: &str) {
    assert_eq!(
        (reply.status, reply.error()),
        (status, error),
        "{what}: {}",
        reply.body
    );
}

async fn resolve_identity(client: &reqwest::Client, server: &Server, id: &str) -> Reply {
    get(
        client,
        &server.xrpc("com.atproto.identity.resolveIdentity"),
        &[("identifier", id)],
    )
    .await
}

async fn refresh_identity(client: &reqwest::Client, server: &Server, body: Value) -> Reply {
    post(
        client,
        &server.xrpc("com.atproto.identity.refreshIdentity"),
        None,
        &body,
    )
    .await
}

#[tokio::test]
async fn identity_resolution_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let client = reqwest::Client::new();
    let alice = create_account(&client, &server, "alice").await;
    let bob = create_account(&client, &server, "bob").await;
    let resolve_did = |did: String| {
        let (client, url) = (&client, server.xrpc("com.atproto.identity.resolveDid"));
        async move { get(client, &url, &[("did", &did)]).await }
    };

    // resolveDid: the document, unverified.
    let doc = resolve_did(alice.did.clone()).await.ok("resolveDid")["didDoc"].clone();
    assert_eq!(doc["id"], alice.did.as_str());
    assert_eq!(doc["alsoKnownAs"], json!(["at://alice.test"]));
    let parsed = DidDocument::from_json(doc).unwrap();
    assert_eq!(parsed.handle().unwrap().as_str(), "alice.test");
    parsed.signing_key().unwrap();

    // Errors: parameter syntax, unknown DID, unsupported method, tombstoned DID.
    let r = get(
        &client,
        &server.xrpc("com.atproto.identity.resolveDid"),
        &[],
    )
    .await;
    assert_error(&r, 400, "InvalidRequest", "resolveDid without did");
    assert_error(
        &resolve_did("alice.test".into()).await,
        400,
        "InvalidRequest",
        "resolveDid of a handle",
    );
    let unknown = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa";
    assert_error(
        &resolve_did(unknown.into()).await,
        400,
        "DidNotFound",
        "unknown did:plc",
    );
    let r = resolve_did("did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme".into()).await;
    assert_error(&r, 400, "InvalidRequest", "did:key");
    let (dead, dead_key, dead_genesis) = register_did(&server, Some("dead.example.com")).await;
    assert_eq!(
        resolve_did(dead.to_string()).await.ok("live DID")["didDoc"]["id"],
        dead.as_str()
    );
    tombstone(&server, &dead, &dead_key, &dead_genesis).await;
    // The live document is cached: refreshIdentity drops it and finds the tombstone.
    let r = refresh_identity(&client, &server, json!({"identifier": dead.as_str()})).await;
    assert_error(&r, 400, "DidDeactivated", "refresh of a tombstoned DID");
    assert_error(
        &resolve_did(dead.to_string()).await,
        400,
        "DidDeactivated",
        "tombstoned DID",
    );

    // resolveIdentity from a DID and from a handle (any case).
    for id in [alice.did.as_str(), "alice.test", "ALICE.Test"] {
        let info = resolve_identity(&client, &server, id)
            .await
            .ok("resolveIdentity");
        assert_eq!(info["did"], alice.did.as_str(), "{id}");
        assert_eq!(info["handle"], "alice.test", "{id}");
        assert_eq!(info["didDoc"]["id"], alice.did.as_str(), "{id}");
    }
    // A DID claiming bob's handle: the handle does not resolve back to it.
    let (impostor, _, _) = register_did(&server, Some("bob.test")).await;
    let info = resolve_identity(&client, &server, impostor.as_str())
        .await
        .ok("impostor");
    assert_eq!(info["handle"], "handle.invalid");
    assert_eq!(info["did"], impostor.as_str());
    assert_eq!(info["didDoc"]["alsoKnownAs"], json!(["at://bob.test"]));
    let info = resolve_identity(&client, &server, "bob.test")
        .await
        .ok("bob");
    assert_eq!(
        (info["did"].as_str(), info["handle"].as_str()),
        (Some(bob.did.as_str()), Some("bob.test"))
    );
    // A DID without a handle.
    let (nameless, _, _) = register_did(&server, None).await;
    let info = resolve_identity(&client, &server, nameless.as_str())
        .await
        .ok("nameless");
    assert_eq!(info["handle"], "handle.invalid");
    // Errors.
    let r = resolve_identity(&client, &server, "nobody.test").await;
    assert_error(&r, 400, "HandleNotFound", "unknown hosted handle");
    let r = resolve_identity(&client, &server, unknown).await;
    assert_error(&r, 400, "DidNotFound", "unknown DID");
    let r = resolve_identity(&client, &server, dead.as_str()).await;
    assert_error(&r, 400, "DidDeactivated", "tombstoned DID");
    let r = resolve_identity(&client, &server, "not an identifier").await;
    assert_error(&r, 400, "InvalidRequest", "bad identifier");
    let r = get(
        &client,
        &server.xrpc("com.atproto.identity.resolveIdentity"),
        &[],
    )
    .await;
    assert_error(&r, 400, "InvalidRequest", "no identifier");
    let r = get(
        &client,
        &server.xrpc("com.atproto.identity.resolveHandle"),
        &[("handle", "nobody.test")],
    )
    .await;
    assert_error(
        &r,
        400,
        "HandleNotFound",
        "resolveHandle of an unknown hosted handle",
    );

    // refreshIdentity: the resolver caches documents; a change made behind the server's back
    // shows only after a refresh.
    change_handle_behind_the_servers_back(
        &server,
        &Did::try_from(alice.did.as_str()).unwrap(),
        "elsewhere.test",
    )
    .await;
    let cached = resolve_identity(&client, &server, &alice.did)
        .await
        .ok("cached");
    assert_eq!(cached["handle"], "alice.test", "served from the cache");
    assert_eq!(cached["didDoc"]["alsoKnownAs"], json!(["at://alice.test"]));
    let r = refresh_identity(&client, &server, json!({"identifier": alice.did})).await;
    let fresh = r.ok("refreshIdentity");
    assert_eq!(fresh["did"], alice.did.as_str());
    assert_eq!(
        fresh["didDoc"]["alsoKnownAs"],
        json!(["at://elsewhere.test"])
    );
    assert_eq!(
        fresh["handle"], "handle.invalid",
        "elsewhere.test is nobody's here"
    );
    let after = resolve_identity(&client, &server, &alice.did)
        .await
        .ok("after refresh");
    assert_eq!(
        after["didDoc"]["alsoKnownAs"],
        json!(["at://elsewhere.test"])
    );
    // From the handle: alice.test still points at alice here, but her document no longer
    // claims it.
    let r = resolve_identity(&client, &server, "alice.test").await;
    assert_error(&r, 400, "HandleNotFound", "handle not claimed back");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("does not include"),
        "{}",
        r.body
    );
    let r = refresh_identity(&client, &server, json!({"identifier": "alice.test"})).await;
    assert_error(&r, 400, "HandleNotFound", "refresh of an unclaimed handle");
    let r = refresh_identity(&client, &server, json!({"identifier": "bob.test"})).await;
    assert_eq!(r.ok("refresh bob")["handle"], "bob.test");
    // refreshIdentity input errors.
    let r = refresh_identity(&client, &server, json!({})).await;
    assert_error(&r, 400, "InvalidRequest", "no identifier");
    let r = refresh_identity(&client, &server, json!({"identifier": 5})).await;
    assert_error(&r, 400, "InvalidRequest", "identifier not a string");
    let r = refresh_identity(&client, &server, json!({"identifier": "bad id"})).await;
    assert_error(&r, 400, "InvalidRequest", "bad identifier");
    let r = refresh_identity(&client, &server, json!({"identifier": unknown})).await;
    assert_error(&r, 400, "DidNotFound", "refresh of an unknown DID");
    let r = refresh_identity(&client, &server, json!({"identifier": "nobody.test"})).await;
    assert_error(&r, 400, "HandleNotFound", "refresh of an unknown handle");
}

async fn get_prefs(client: &reqwest::Client, server: &Server, token: &str) -> Reply {
    let res = client
        .get(server.xrpc("app.bsky.actor.getPreferences"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let body = res.json().await.unwrap_or(Value::Null);
    Reply { status, body }
}

async fn put_prefs(client: &reqwest::Client, server: &Server, token: &str, body: Value) -> Reply {
    post(
        client,
        &server.xrpc("app.bsky.actor.putPreferences"),
        Some(token),
        &body,
    )
    .await
}

/// An app-password session of `account` (privileged or not): its access token.
async fn app_password_session(
    client: &reqwest::Client,
    server: &Server,
    account: &Account,
    name: &str,
    privileged: bool,
) -> String {
    let created = post(
        client,
        &server.xrpc("com.atproto.server.createAppPassword"),
        Some(&account.access),
        &json!({"name": name, "privileged": privileged}),
    )
    .await
    .ok("createAppPassword");
    let session = post(
        client,
        &server.xrpc("com.atproto.server.createSession"),
        None,
        &json!({"identifier": account.handle, "password": created["password"]}),
    )
    .await
    .ok("createSession with an app password");
    session["accessJwt"].as_str().unwrap().to_owned()
}

fn types(prefs: &Value) -> Vec<String> {
    prefs["preferences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["$type"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn preferences_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let client = reqwest::Client::new();
    let alice = create_account(&client, &server, "alice").await;
    let bob = create_account(&client, &server, "bob").await;

    let r = get(&client, &server.xrpc("app.bsky.actor.getPreferences"), &[]).await;
    assert_error(
        &r,
        401,
        "AuthenticationRequired",
        "getPreferences without auth",
    );
    let r = post(
        &client,
        &server.xrpc("app.bsky.actor.putPreferences"),
        None,
        &json!({"preferences": []}),
    )
    .await;
    assert_error(
        &r,
        401,
        "AuthenticationRequired",
        "putPreferences without auth",
    );
    let empty = get_prefs(&client, &server, &alice.access).await.ok("empty");
    assert_eq!(empty, json!({"preferences": []}));

    let adult = json!({"$type": ADULT, "enabled": true});
    let personal = json!({"$type": PERSONAL, "birthDate": "1990-09-11T18:05:42.556Z"});
    let muted = json!({"$type": MUTED, "items": []});
    let body = json!({"preferences": [
        adult,
        {"$type": DECLARED, "isOverAge13": false},
        personal,
    ]});
    put_prefs(&client, &server, &alice.access, body)
        .await
        .ok("put");
    let got = get_prefs(&client, &server, &alice.access).await.ok("get");
    let declared =
        json!({"$type": DECLARED, "isOverAge13": true, "isOverAge16": true, "isOverAge18": true});
    assert_eq!(
        got,
        json!({"preferences": [adult, personal, declared]}),
        "stored in order, declaredAgePref computed (the sent one dropped)"
    );
    assert_eq!(
        get_prefs(&client, &server, &bob.access).await.ok("bob"),
        json!({"preferences": []})
    );

    // Refused inputs change nothing.
    let refused: Vec<(Value, &str)> = vec![
        (json!({}), "Input must have the property \"preferences\""),
        (
            json!({"preferences": {"$type": ADULT}}),
            "Input/preferences must be an array",
        ),
        (
            json!({"preferences": [muted, {"enabled": true}]}),
            "Input/preferences/1 must be an object which includes the \"$type\" property",
        ),
        (
            json!({"preferences": [{"$type": 7}]}),
            "Input/preferences/0 must be an object which includes the \"$type\" property",
        ),
        (
            json!({"preferences": [{"$type": ADULT, "enabled": "yes"}]}),
            "Input/preferences/0/enabled must be a boolean",
        ),
        (
            json!({"preferences": [muted, {"$type": "com.example.pref"}]}),
            "Some preferences are not in the app.bsky namespace",
        ),
    ];
    for (body, message) in refused {
        let r = put_prefs(&client, &server, &alice.access, body.clone()).await;
        assert_error(&r, 400, "InvalidRequest", &body.to_string());
        assert_eq!(r.body["message"], message, "{body}");
    }
    let r = client
        .post(server.xrpc("app.bsky.actor.putPreferences"))
        .bearer_auth(&alice.access)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(
        get_prefs(&client, &server, &alice.access)
            .await
            .ok("unchanged"),
        got
    );

    // App passwords, privileged or not, neither see, set nor remove personalDetailsPref; they
    // do see the computed declaredAgePref.
    for (name, privileged) in [("plain", false), ("privileged", true)] {
        let token = app_password_session(&client, &server, &alice, name, privileged).await;
        let seen = get_prefs(&client, &server, &token)
            .await
            .ok("app password get");
        assert_eq!(seen, json!({"preferences": [adult, declared]}), "{name}");
        let r = put_prefs(&client, &server, &token, json!({"preferences": [personal]})).await;
        assert_error(&r, 400, "InvalidRequest", name);
        assert_eq!(
            r.body["message"],
            format!("Do not have authorization to set preferences: {PERSONAL}")
        );
        put_prefs(&client, &server, &token, json!({"preferences": [muted]}))
            .await
            .ok("app password put");
        let full = get_prefs(&client, &server, &alice.access)
            .await
            .ok("full get");
        assert_eq!(
            full,
            json!({"preferences": [personal, muted, declared]}),
            "{name}: personalDetailsPref kept, the rest replaced"
        );
        put_prefs(
            &client,
            &server,
            &alice.access,
            json!({"preferences": [adult, personal]}),
        )
        .await
        .ok("restore");
    }

    // A full session replaces everything, personalDetailsPref included.
    put_prefs(
        &client,
        &server,
        &alice.access,
        json!({"preferences": [muted]}),
    )
    .await
    .ok("replace");
    assert_eq!(
        get_prefs(&client, &server, &alice.access)
            .await
            .ok("replaced"),
        json!({"preferences": [muted]})
    );
    put_prefs(&client, &server, &alice.access, json!({"preferences": []}))
        .await
        .ok("clear");
    assert_eq!(
        types(
            &get_prefs(&client, &server, &alice.access)
                .await
                .ok("cleared")
        ),
        Vec::<String>::new()
    );
    // A birth date under 13 years ago.
    let recent = chrono::Utc::now()
        .date_naive()
        .checked_sub_days(chrono::Days::new(365 * 5))
        .unwrap();
    let young = json!({"$type": PERSONAL, "birthDate": format!("{recent}T00:00:00.000Z")});
    put_prefs(
        &client,
        &server,
        &alice.access,
        json!({"preferences": [young]}),
    )
    .await
    .ok("young");
    let got = get_prefs(&client, &server, &alice.access)
        .await
        .ok("young get");
    assert_eq!(
        got["preferences"][1],
        json!({"$type": DECLARED, "isOverAge13": false, "isOverAge16": false, "isOverAge18": false})
    );
}

async fn service_auth(
    client: &reqwest::Client,
    server: &Server,
    token: &str,
    params: &[(&str, &str)],
) -> Reply {
    let url =
        reqwest::Url::parse_with_params(&server.xrpc("com.atproto.server.getServiceAuth"), params)
            .unwrap();
    let res = client.get(url).bearer_auth(token).send().await.unwrap();
    let status = res.status().as_u16();
    let body = res.json().await.unwrap_or(Value::Null);
    Reply { status, body }
}

#[tokio::test]
async fn service_auth_and_temp_methods_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let client = reqwest::Client::new();
    let alice = create_account(&client, &server, "alice").await;
    let doc = get(
        &client,
        &server.xrpc("com.atproto.identity.resolveDid"),
        &[("did", &alice.did)],
    )
    .await
    .ok("resolveDid")["didDoc"]
        .clone();
    let key = DidDocument::from_json(doc).unwrap().signing_key().unwrap();
    let aud = "did:web:api.example.com";
    let lxm = "app.bsky.feed.getTimeline";
    let now = chrono::Utc::now().timestamp();

    // A bound token, 30 minutes: verifies with atp-identity's verifier.
    let exp = (now + 1800).to_string();
    let token = service_auth(
        &client,
        &server,
        &alice.access,
        &[("aud", aud), ("lxm", lxm), ("exp", &exp)],
    )
    .await
    .ok("getServiceAuth")["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let expected = ExpectedClaims::new(aud).with_lxm(lxm.parse().unwrap());
    let claims = verify(&token, &expected, chrono::Utc::now(), &key).unwrap();
    assert_eq!(claims.iss.did.as_str(), alice.did);
    assert_eq!(claims.exp, now + 1800);
    let iat = claims.iat.unwrap();
    assert!((now - 2..=now + 5).contains(&iat), "iat {iat} vs {now}");
    let jti = claims.jti.clone().unwrap();
    assert_eq!(jti.len(), 32);
    assert!(jti.chars().all(|c| c.is_ascii_hexdigit()));
    let wrong = ExpectedClaims::new(aud).with_lxm("app.bsky.feed.getAuthorFeed".parse().unwrap());
    assert!(verify(&token, &wrong, chrono::Utc::now(), &key).is_err());
    // And with the official verifier.
    let node = node::node_with("@atproto/xrpc-server");
    let out = node::run_script(
        node,
        "service_auth_verify.mjs",
        vec![
            token.clone(),
            aud.into(),
            lxm.into(),
            key.did_key(),
            alice.did.clone(),
        ],
    )
    .await;
    node::assert_all_passed("service_auth_verify.mjs", &out);

    // Defaults: no exp, no lxm → one minute, unbound; every token has its own jti.
    let a = service_auth(&client, &server, &alice.access, &[("aud", aud)])
        .await
        .ok("default");
    let b = service_auth(
        &client,
        &server,
        &alice.access,
        &[("aud", "did:web:api.example.com#svc")],
    )
    .await
    .ok("did#service");
    let a = decode_unverified(a["token"].as_str().unwrap())
        .unwrap()
        .claims()
        .clone();
    let b = decode_unverified(b["token"].as_str().unwrap())
        .unwrap()
        .claims()
        .clone();
    assert_eq!(a.lxm, None);
    assert_eq!(a.exp - a.iat.unwrap(), 60);
    assert_eq!(b.aud, "did:web:api.example.com#svc");
    assert_ne!(a.jti, b.jti);
    assert_ne!(a.jti.as_deref(), Some(jti.as_str()));
    let zero = service_auth(
        &client,
        &server,
        &alice.access,
        &[("aud", aud), ("exp", "0")],
    )
    .await
    .ok("exp 0 is the default");
    let zero = decode_unverified(zero["token"].as_str().unwrap())
        .unwrap()
        .claims()
        .clone();
    assert_eq!(zero.exp - zero.iat.unwrap(), 60);
    let unbound_minute = (now + 50).to_string();
    service_auth(
        &client,
        &server,
        &alice.access,
        &[("aud", aud), ("exp", &unbound_minute)],
    )
    .await
    .ok("unbound, under a minute");

    // Expiry limits.
    let past = (now - 10).to_string();
    let two_hours = (now + 7200).to_string();
    let five_minutes = (now + 300).to_string();
    for (params, what) in [
        (
            vec![("aud", aud), ("lxm", lxm), ("exp", past.as_str())],
            "in the past",
        ),
        (
            vec![("aud", aud), ("lxm", lxm), ("exp", two_hours.as_str())],
            "over an hour",
        ),
        (
            vec![("aud", aud), ("exp", five_minutes.as_str())],
            "unbound over a minute",
        ),
    ] {
        let r = service_auth(&client, &server, &alice.access, &params).await;
        assert_error(&r, 400, "BadExpiration", what);
    }
    service_auth(
        &client,
        &server,
        &alice.access,
        &[("aud", aud), ("lxm", lxm), ("exp", &five_minutes)],
    )
    .await
    .ok("bound, five minutes");

    // Methods: protected never, privileged not with an ordinary app password.
    for protected in [
        "com.atproto.identity.updateHandle",
        "com.atproto.server.createAppPassword",
        "com.atproto.server.getSession",
        "com.atproto.admin.sendEmail",
    ] {
        let r = service_auth(
            &client,
            &server,
            &alice.access,
            &[("aud", aud), ("lxm", protected)],
        )
        .await;
        assert_error(&r, 400, "InvalidRequest", protected);
        assert!(
            r.body["message"]
                .as_str()
                .unwrap()
                .contains("protected method"),
            "{}",
            r.body
        );
    }
    let chat = "chat.bsky.convo.getMessages";
    service_auth(
        &client,
        &server,
        &alice.access,
        &[("aud", aud), ("lxm", chat)],
    )
    .await
    .ok("chat with a full session");
    let plain = app_password_session(&client, &server, &alice, "plain", false).await;
    let r = service_auth(&client, &server, &plain, &[("aud", aud), ("lxm", chat)]).await;
    assert_error(&r, 400, "InvalidRequest", "chat with an app password");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("insufficient access"),
        "{}",
        r.body
    );
    let r = service_auth(
        &client,
        &server,
        &plain,
        &[("aud", aud), ("lxm", "com.atproto.server.createAccount")],
    )
    .await;
    assert_error(
        &r,
        400,
        "InvalidRequest",
        "createAccount with an app password",
    );
    let t = service_auth(&client, &server, &plain, &[("aud", aud), ("lxm", lxm)])
        .await
        .ok("app password, ordinary method");
    verify(
        t["token"].as_str().unwrap(),
        &expected,
        chrono::Utc::now(),
        &key,
    )
    .unwrap();
    let privileged = app_password_session(&client, &server, &alice, "privileged", true).await;
    service_auth(
        &client,
        &server,
        &privileged,
        &[("aud", aud), ("lxm", chat)],
    )
    .await
    .ok("chat with a privileged app password");

    // Parameter errors and auth.
    for (params, what) in [
        (vec![], "no aud"),
        (vec![("aud", "api.example.com")], "aud not a DID"),
        (
            vec![("aud", "did:web:api.example.com#")],
            "empty service fragment",
        ),
        (vec![("aud", aud), ("lxm", "not-an-nsid")], "bad lxm"),
        (vec![("aud", aud), ("exp", "soon")], "exp not an integer"),
    ] {
        let r = service_auth(&client, &server, &alice.access, &params).await;
        assert_error(&r, 400, "InvalidRequest", what);
    }
    let long_aud = format!("did:web:{}", "a".repeat(2050));
    let r = service_auth(&client, &server, &alice.access, &[("aud", &long_aud)]).await;
    assert_error(&r, 400, "InvalidRequest", "aud over 2048 characters");
    let r = get(
        &client,
        &server.xrpc("com.atproto.server.getServiceAuth"),
        &[("aud", aud)],
    )
    .await;
    assert_error(
        &r,
        401,
        "AuthenticationRequired",
        "getServiceAuth without auth",
    );

    // com.atproto.temp.checkSignupQueue: authenticated, always activated.
    let r = get(
        &client,
        &server.xrpc("com.atproto.temp.checkSignupQueue"),
        &[],
    )
    .await;
    assert_error(
        &r,
        401,
        "AuthenticationRequired",
        "checkSignupQueue without auth",
    );
    let res = client
        .get(server.xrpc("com.atproto.temp.checkSignupQueue"))
        .bearer_auth(&alice.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"activated": true})
    );

    // com.atproto.temp.checkHandleAvailability.
    let check = |params: Vec<(&'static str, String)>| {
        let (client, url) = (
            &client,
            server.xrpc("com.atproto.temp.checkHandleAvailability"),
        );
        async move {
            let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            get(client, &url, &params).await
        }
    };
    let available = check(vec![("handle", "Carol.test".into())])
        .await
        .ok("available");
    assert_eq!(
        available,
        json!({"handle": "carol.test", "result": {"$type": "com.atproto.temp.checkHandleAvailability#resultAvailable"}})
    );
    let taken = check(vec![
        ("handle", "alice.test".into()),
        ("email", "Al.Ice@example.com".into()),
        ("birthDate", "1990-09-11T18:05:42.556Z".into()),
    ])
    .await
    .ok("taken");
    assert_eq!(taken["handle"], "alice.test");
    assert_eq!(
        taken["result"]["$type"],
        "com.atproto.temp.checkHandleAvailability#resultUnavailable"
    );
    let suggestions = taken["result"]["suggestions"].as_array().unwrap();
    assert!((1..=5).contains(&suggestions.len()), "{taken}");
    let pairs: Vec<(&str, &str)> = suggestions
        .iter()
        .map(|s| (s["handle"].as_str().unwrap(), s["method"].as_str().unwrap()))
        .collect();
    assert_eq!(
        pairs[..3],
        [
            ("alice90.test", "handle_yob"),
            ("al-ice.test", "email"),
            ("al-ice90.test", "email_yob")
        ],
        "{taken}"
    );
    for (handle, _) in &pairs {
        let r = check(vec![("handle", (*handle).to_owned())])
            .await
            .ok("suggestion");
        assert_eq!(
            r["result"]["$type"], "com.atproto.temp.checkHandleAvailability#resultAvailable",
            "suggested {handle} must be available"
        );
    }
    let foreign = check(vec![("handle", "alice.example.com".into())])
        .await
        .ok("foreign");
    assert_eq!(
        foreign["result"]["$type"], "com.atproto.temp.checkHandleAvailability#resultUnavailable",
        "not creatable here"
    );
    for s in foreign["result"]["suggestions"].as_array().unwrap() {
        assert!(
            s["handle"].as_str().unwrap().ends_with(".test"),
            "{foreign}"
        );
    }
    let r = check(vec![
        ("handle", "alice.test".into()),
        ("email", "not-an-email".into()),
    ])
    .await;
    assert_error(&r, 400, "InvalidEmail", "bad email");
    let r = check(vec![("handle", "not a handle".into())]).await;
    assert_error(&r, 400, "InvalidRequest", "bad handle");
    let r = check(vec![]).await;
    assert_error(&r, 400, "InvalidRequest", "no handle");
    let r = check(vec![
        ("handle", "alice.test".into()),
        ("birthDate", "yesterday".into()),
    ])
    .await;
    assert_error(&r, 400, "InvalidRequest", "bad birthDate");

    // resolveLexicon is served (tests/lexicon_resolve.rs); a bad NSID is refused before any
    // network lookup.
    let r = get(
        &client,
        &server.xrpc("com.atproto.lexicon.resolveLexicon"),
        &[("nsid", "not an nsid")],
    )
    .await;
    assert_error(&r, 400, "InvalidRequest", "resolveLexicon");
}
