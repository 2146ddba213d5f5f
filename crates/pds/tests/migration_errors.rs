//! Inbound account migration against the real `pds serve` binary and its embedded PLC directory,
//! with the "old host" played by this test (it holds the DID's signing and rotation keys):
//! every bad input gets a clear error and changes nothing (forged, expired, misaddressed or
//! missing service-auth tokens; a CAR for another DID, a corrupted CAR, a CAR over
//! `PDS_MAX_REPO_IMPORT_SIZE`; a PLC operation that does not point here; activation before the
//! DID document names us; an import into an active account), and the good path works: the
//! account starts deactivated, the import indexes records and expects blobs, activation
//! re-signs the head with our key (same data CID, higher rev) and emits `#identity`,
//! `#account`, `#sync`. Also `signPlcOperation` (outbound) with a bad and a good token.

mod harness;

use std::collections::BTreeMap;

use atp_crypto::{Curve, Keypair, PublicKey};
use atp_data::{Cid, Value};
use atp_identity::plc::{PlcOp, SignedOp, UnsignedOp};
use atp_identity::resolve::{Limits, PlcClient};
use atp_identity::service_auth::{Claims, Issuer, create_token};
use atp_syntax::{Did, Handle, Nsid, RecordKey, Tid};
use harness::{Reply, Server, post, post_bytes};
use serde_json::{Value as Json, json};

const LXM: &str = "com.atproto.server.createAccount";
const AUD: &str = "did:web:localhost";
/// The import size limit the server runs with.
const IMPORT_LIMIT: usize = 64 * 1024;

/// The identity as the old host left it: a did:plc pointing elsewhere.
struct OldHost {
    did: Did,
    signing: Keypair,
    rotation: Keypair,
    plc: PlcClient,
}

async fn old_identity(server: &Server) -> OldHost {
    let plc = PlcClient::new(
        &format!("http://127.0.0.1:{}", server.plc_port),
        &Limits::default(),
    )
    .expect("PLC client");
    let signing = Keypair::generate(Curve::K256);
    let rotation = Keypair::generate(Curve::K256);
    let handle: Handle = "alice.old.example".parse().unwrap();
    let op = PlcOp::atproto(
        &signing.public_key(),
        &handle,
        "https://old.example.com",
        vec![rotation.public_key().did_key()],
        None,
    );
    let signed = UnsignedOp::Operation(op).sign(&rotation).unwrap();
    let did = signed.did().unwrap();
    plc.submit(&did, &signed).await.expect("genesis accepted");
    OldHost {
        did,
        signing,
        rotation,
        plc,
    }
}

fn token(key: &Keypair, iss: &Did, aud: &str, lxm: Option<&str>, exp_offset: i64) -> String {
    let now = chrono::Utc::now();
    let mut claims = Claims::new(Issuer::did(iss.clone()), aud, now, "nonce-1")
        .expiring_at(now.timestamp() + exp_offset);
    if let Some(lxm) = lxm {
        claims = claims.with_lxm(&lxm.parse::<Nsid>().unwrap());
    }
    create_token(&claims, key).unwrap()
}

fn account_input(did: &Did) -> Json {
    json!({"handle": "alice.test", "email": "alice@example.com", "password": "hunter22", "did": did.as_str()})
}

async fn get_auth(client: &reqwest::Client, url: &str, token: &str) -> Reply {
    let res = client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("send");
    let status = res.status().as_u16();
    let bytes = res.bytes().await.unwrap_or_default();
    Reply {
        status,
        body: serde_json::from_slice(&bytes).unwrap_or(Json::Null),
    }
}

/// A repository CAR for `did` signed by `key`: `records` posts (the first referencing `blob`),
/// plus one record padded with `padding` bytes. Returns the CAR and its MST root.
fn repo_car(
    did: &Did,
    key: &Keypair,
    records: usize,
    blob: &Json,
    padding: usize,
) -> (Vec<u8>, Cid) {
    let collection: Nsid = "app.bsky.feed.post".parse().unwrap();
    let mut writes = Vec::new();
    for i in 0..records {
        let mut record = json!({"$type": "app.bsky.feed.post", "text": format!("post {i}"), "createdAt": "2024-01-01T00:00:00.000Z"});
        if i == 0 {
            record["embed"] =
                json!({"$type": "app.bsky.embed.images", "images": [{"alt": "", "image": blob}]});
        }
        let rkey: RecordKey = format!("3kaaaaaaaa{i:03}").parse().unwrap();
        writes.push((
            collection.clone(),
            rkey,
            atp_data::json::from_json(&record).unwrap(),
        ));
    }
    if padding > 0 {
        let mut map = BTreeMap::new();
        map.insert("$type".to_owned(), Value::from("app.bsky.feed.post"));
        map.insert("pad".to_owned(), Value::Bytes(vec![7; padding]));
        writes.push((
            collection.clone(),
            "3kzzzzzzzzzzz".parse().unwrap(),
            Value::Map(map),
        ));
    }
    let rev: Tid = "3kaaaaaaaaaaa".parse().unwrap();
    let commit = atp_repo::format_genesis(did, writes, key, &rev).unwrap();
    let mut car = atp_data::car::CarWriter::new(Vec::new(), &[commit.cid]).unwrap();
    for (cid, bytes) in &commit.new_blocks {
        car.write_block(cid, bytes).unwrap();
    }
    (car.finish().unwrap(), commit.data)
}

fn blob_ref(cid: &str) -> Json {
    json!({"$type": "blob", "ref": {"$link": cid}, "mimeType": "image/png", "size": 5})
}

/// The kinds of the events stored for `did`, in order.
fn event_kinds(server: &Server, did: &Did) -> Vec<String> {
    let conn = rusqlite::Connection::open_with_flags(
        server.data_dir.join("pds.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut stmt = conn
        .prepare("SELECT kind FROM event WHERE did = ?1 ORDER BY seq")
        .unwrap();
    stmt.query_map([did.as_str()], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

async fn status(client: &reqwest::Client, server: &Server, access: &str) -> Json {
    get_auth(
        client,
        &server.xrpc("com.atproto.server.checkAccountStatus"),
        access,
    )
    .await
    .ok("checkAccountStatus")
}

async fn import(client: &reqwest::Client, server: &Server, access: &str, car: Vec<u8>) -> Reply {
    post_bytes(
        client,
        &server.xrpc("com.atproto.repo.importRepo"),
        Some(access),
        "application/vnd.ipld.car",
        car,
    )
    .await
}

/// POSTs `body` with `Transfer-Encoding: chunked` (no length announced) over a raw connection;
/// returns the response's status.
async fn post_chunked(
    server: &Server,
    nsid: &str,
    token: &str,
    content_type: &str,
    body: &[u8],
) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    let head = format!(
        "POST /xrpc/{nsid} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: {content_type}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let mut out = head.into_bytes();
    for chunk in body.chunks(4096) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    // The server may answer (and stop reading) before the upload ends.
    let _ = stream.write_all(&out).await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"))
}

fn assert_refused(reply: &Reply, status: u16, error: &str, what: &str) {
    assert_eq!(reply.status, status, "{what}: {}", reply.body);
    assert_eq!(reply.error(), error, "{what}: {}", reply.body);
    assert!(
        reply.body["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{what}: no message: {}",
        reply.body
    );
}

async fn start(dir: &std::path::Path) -> Server {
    let limit = IMPORT_LIMIT.to_string();
    Server::start(dir, &[("PDS_MAX_REPO_IMPORT_SIZE", limit.as_str())]).await
}

#[tokio::test]
async fn create_account_with_did_needs_a_valid_service_auth_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let client = reqwest::Client::new();
    let old = old_identity(&server).await;
    let url = server.xrpc("com.atproto.server.createAccount");
    let input = account_input(&old.did);
    let stranger = Keypair::generate(Curve::K256);
    let other_did: Did = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa".parse().unwrap();
    let cases = [
        (None, 401, "AuthenticationRequired", "no token"),
        (
            Some(token(&stranger, &old.did, AUD, Some(LXM), 60)),
            401,
            "BadJwtSignature",
            "forged token",
        ),
        (
            Some(token(&old.signing, &old.did, AUD, Some(LXM), -10)),
            401,
            "JwtExpired",
            "expired token",
        ),
        (
            Some(token(
                &old.signing,
                &old.did,
                "did:web:elsewhere.example",
                Some(LXM),
                60,
            )),
            401,
            "BadJwtAudience",
            "token for another service",
        ),
        (
            Some(token(
                &old.signing,
                &old.did,
                AUD,
                Some("com.atproto.repo.createRecord"),
                60,
            )),
            401,
            "BadJwtLexiconMethod",
            "token for another method",
        ),
        (
            Some(token(&old.signing, &old.did, AUD, None, 60)),
            401,
            "BadJwtLexiconMethod",
            "token without lxm",
        ),
        (Some("not-a-jwt".to_owned()), 401, "BadJwt", "garbage token"),
    ];
    for (token, status, error, what) in cases {
        let reply = post(&client, &url, token.as_deref(), &input).await;
        assert_refused(&reply, status, error, what);
    }
    // A valid token of another DID does not authorize this one.
    let other_input = account_input(&other_did);
    let reply = post(
        &client,
        &url,
        Some(&token(&old.signing, &old.did, AUD, Some(LXM), 60)),
        &other_input,
    )
    .await;
    assert_refused(
        &reply,
        401,
        "AuthenticationRequired",
        "token of another DID",
    );
    // Nothing was created.
    let reply = harness::get(
        &client,
        &server.xrpc("com.atproto.sync.getRepoStatus"),
        &[("did", old.did.as_str())],
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(event_kinds(&server, &old.did).is_empty());

    // The real thing: created deactivated, announcing nothing.
    let good = token(&old.signing, &old.did, AUD, Some(LXM), 60);
    let body = post(&client, &url, Some(&good), &input)
        .await
        .ok("createAccount");
    assert_eq!(body["did"], old.did.as_str());
    assert_eq!(body["active"], false, "{body}");
    assert_eq!(body["status"], "deactivated", "{body}");
    assert!(event_kinds(&server, &old.did).is_empty());
    // Twice: refused.
    let reply = post(&client, &url, Some(&good), &input).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
}

#[tokio::test]
async fn inbound_migration_refuses_bad_input_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let client = reqwest::Client::new();
    let old = old_identity(&server).await;
    let good = token(&old.signing, &old.did, AUD, Some(LXM), 60);
    let body = post(
        &client,
        &server.xrpc("com.atproto.server.createAccount"),
        Some(&good),
        &account_input(&old.did),
    )
    .await
    .ok("createAccount");
    let access = body["accessJwt"].as_str().unwrap().to_owned();
    let initial = status(&client, &server, &access).await;
    assert_eq!(initial["activated"], false);
    assert_eq!(initial["validDid"], false);
    assert_eq!(initial["indexedRecords"], 0);

    // Bad CARs change nothing.
    let blob_bytes = b"hello".to_vec();
    let blob_cid = atp_data::cid::cid_for_raw(&blob_bytes).to_string();
    let blob_cid = blob_cid.as_str();
    let other = Keypair::generate(Curve::K256);
    let other_did: Did = "did:plc:bbbbbbbbbbbbbbbbbbbbbbbb".parse().unwrap();
    let (foreign, _) = repo_car(&other_did, &other, 3, &blob_ref(blob_cid), 0);
    let (car, data) = repo_car(&old.did, &old.signing, 40, &blob_ref(blob_cid), 0);
    let (huge, _) = repo_car(&old.did, &old.signing, 3, &blob_ref(blob_cid), IMPORT_LIMIT);
    let mut corrupt = car.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    let refusals = [
        (foreign, 400, "InvalidRequest", "a CAR for another DID"),
        (huge, 413, "PayloadTooLarge", "a CAR over the size limit"),
        (corrupt, 400, "InvalidRequest", "a corrupted CAR"),
        (
            car[..car.len() / 2].to_vec(),
            400,
            "InvalidRequest",
            "a truncated CAR",
        ),
        (b"garbage".to_vec(), 400, "InvalidRequest", "not a CAR"),
    ];
    for (bytes, code, error, what) in refusals {
        let reply = import(&client, &server, &access, bytes).await;
        assert_refused(&reply, code, error, what);
        assert_eq!(status(&client, &server, &access).await, initial, "{what}");
    }
    let reply = post_bytes(
        &client,
        &server.xrpc("com.atproto.repo.importRepo"),
        Some(&access),
        "application/json",
        car.clone(),
    )
    .await;
    assert_refused(&reply, 400, "InvalidRequest", "wrong content type");
    // Streamed with no declared length: cut off at the limit.
    let (huge, _) = repo_car(&old.did, &old.signing, 3, &blob_ref(blob_cid), IMPORT_LIMIT);
    let code = post_chunked(
        &server,
        "com.atproto.repo.importRepo",
        &access,
        "application/vnd.ipld.car",
        &huge,
    )
    .await;
    assert_eq!(code, 413, "a streamed CAR over the limit");
    assert_eq!(status(&client, &server, &access).await, initial, "streamed");
    // Streamed and within the limit: fine (checked below with the same CAR).
    assert_eq!(
        post_chunked(
            &server,
            "com.atproto.repo.importRepo",
            &access,
            "application/vnd.ipld.car",
            &car
        )
        .await,
        200,
        "a streamed CAR within the limit"
    );

    // The good CAR.
    import(&client, &server, &access, car.clone())
        .await
        .ok("importRepo");
    let imported = status(&client, &server, &access).await;
    assert_eq!(imported["activated"], false);
    assert_eq!(imported["indexedRecords"], 40);
    assert_eq!(imported["expectedBlobs"], 1);
    assert_eq!(imported["importedBlobs"], 0);
    let missing = get_auth(
        &client,
        &server.xrpc("com.atproto.repo.listMissingBlobs"),
        &access,
    )
    .await
    .ok("listMissingBlobs");
    assert_eq!(missing["blobs"][0]["cid"], blob_cid, "{missing}");
    assert!(
        event_kinds(&server, &old.did).is_empty(),
        "import announces nothing"
    );
    // Importing again is fine (a retry replaces the repository).
    import(&client, &server, &access, car.clone())
        .await
        .ok("importRepo again");
    assert_eq!(status(&client, &server, &access).await, imported);

    // The blob arrives.
    post_bytes(
        &client,
        &server.xrpc("com.atproto.repo.uploadBlob"),
        Some(&access),
        "image/png",
        blob_bytes,
    )
    .await
    .ok("uploadBlob");
    let imported = status(&client, &server, &access).await;
    assert_eq!(imported["importedBlobs"], 1);
    let missing = get_auth(
        &client,
        &server.xrpc("com.atproto.repo.listMissingBlobs"),
        &access,
    )
    .await
    .ok("listMissingBlobs");
    assert_eq!(missing["blobs"], json!([]), "{missing}");

    // A PLC operation that does not point here is refused and not forwarded.
    let log_before = old.plc.audit_log(&old.did).await.unwrap().len();
    let creds = get_auth(
        &client,
        &server.xrpc("com.atproto.identity.getRecommendedDidCredentials"),
        &access,
    )
    .await
    .ok("getRecommendedDidCredentials");
    let prev = old.plc.last_operation(&old.did).await.unwrap().cid();
    let our_key = creds["verificationMethods"]["atproto"]
        .as_str()
        .unwrap()
        .to_owned();
    let our_rotation = creds["rotationKeys"][0].as_str().unwrap().to_owned();
    let endpoint = creds["services"]["atproto_pds"]["endpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    let handover = |endpoint: &str, key: &str, rotation: Vec<String>| {
        let op = PlcOp {
            rotation_keys: rotation,
            verification_methods: BTreeMap::from([("atproto".to_owned(), key.to_owned())]),
            also_known_as: vec!["at://alice.test".to_owned()],
            services: BTreeMap::new(),
            prev: Some(prev.to_string()),
        };
        let mut op = op;
        op.set_pds_endpoint(endpoint);
        UnsignedOp::Operation(op)
            .sign(&old.rotation)
            .unwrap()
            .to_json()
    };
    let rotation = vec![old.rotation.public_key().did_key(), our_rotation.clone()];
    let bad_ops = [
        (
            handover("https://old.example.com", &our_key, rotation.clone()),
            "old endpoint",
        ),
        (
            handover(
                &endpoint,
                &old.signing.public_key().did_key(),
                rotation.clone(),
            ),
            "old key",
        ),
        (
            handover(
                &endpoint,
                &our_key,
                vec![old.rotation.public_key().did_key()],
            ),
            "no rotation key of ours",
        ),
        (
            json!({"type": "plc_tombstone", "prev": prev.to_string(), "sig": "x"}),
            "a tombstone",
        ),
    ];
    for (op, what) in bad_ops {
        let reply = post(
            &client,
            &server.xrpc("com.atproto.identity.submitPlcOperation"),
            Some(&access),
            &json!({ "operation": op }),
        )
        .await;
        assert_refused(&reply, 400, "InvalidRequest", what);
    }
    assert_eq!(old.plc.audit_log(&old.did).await.unwrap().len(), log_before);

    // Activation before the DID document names us: refused, still deactivated.
    let reply = post(
        &client,
        &server.xrpc("com.atproto.server.activateAccount"),
        Some(&access),
        &json!({}),
    )
    .await;
    assert_refused(
        &reply,
        400,
        "InvalidRequest",
        "activation before the PLC update",
    );
    assert_eq!(status(&client, &server, &access).await, imported);

    // The handover, then activation.
    post(
        &client,
        &server.xrpc("com.atproto.identity.submitPlcOperation"),
        Some(&access),
        &json!({ "operation": handover(&endpoint, &our_key, rotation) }),
    )
    .await
    .ok("submitPlcOperation");
    assert_eq!(
        old.plc.audit_log(&old.did).await.unwrap().len(),
        log_before + 1
    );
    assert_eq!(status(&client, &server, &access).await["validDid"], true);
    post(
        &client,
        &server.xrpc("com.atproto.server.activateAccount"),
        Some(&access),
        &json!({}),
    )
    .await
    .ok("activateAccount");
    let active = status(&client, &server, &access).await;
    assert_eq!(active["activated"], true);
    assert!(active["repoRev"].as_str().unwrap() > imported["repoRev"].as_str().unwrap());
    assert_eq!(
        event_kinds(&server, &old.did),
        ["identity", "identity", "account", "sync"],
        "submitPlcOperation's #identity, then activation's"
    );
    // getRepo verifies against the DID's current key; same data.
    let res = client
        .get(format!(
            "{}?did={}",
            server.xrpc("com.atproto.sync.getRepo"),
            old.did
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let served = res.bytes().await.unwrap();
    let key = PublicKey::from_did_key(&our_key).unwrap();
    let summary = atp_repo::verify_car(&served[..], Some(&key)).expect("verifies with our key");
    assert_eq!(summary.data, data);
    assert_eq!(summary.records, 40);
    assert!(atp_repo::verify_car(&served[..], Some(&old.signing.public_key())).is_err());

    // An active account refuses imports.
    let before = status(&client, &server, &access).await;
    let reply = import(&client, &server, &access, car).await;
    assert_refused(
        &reply,
        400,
        "InvalidRequest",
        "an import into an active account",
    );
    assert_eq!(status(&client, &server, &access).await, before);
}

#[tokio::test]
async fn sign_plc_operation_needs_the_email_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let client = reqwest::Client::new();
    let account = harness::create_account(&client, &server, "carol").await;
    let did: Did = account.did.parse().unwrap();
    let url = server.xrpc("com.atproto.identity.signPlcOperation");
    let new_key = Keypair::generate(Curve::K256).public_key().did_key();
    let request = |token: &str| {
        json!({
            "token": token,
            "verificationMethods": {"atproto": new_key},
            "services": {"atproto_pds": {"type": "AtprotoPersonalDataServer", "endpoint": "https://new.example.com"}},
        })
    };
    let reply = post(&client, &url, Some(&account.access), &json!({})).await;
    assert_refused(&reply, 400, "InvalidRequest", "no token");
    let reply = post(&client, &url, Some(&account.access), &request("nope")).await;
    assert_refused(&reply, 400, "InvalidToken", "wrong token");
    // requestPlcOperationSignature would mail it; put one in place directly.
    {
        let conn = rusqlite::Connection::open(server.data_dir.join("pds.sqlite")).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        conn.execute(
            "INSERT INTO email_token (did, purpose, token, requested_at) VALUES (?1, 'plc_operation', 'ABCDE-12345', ?2)",
            rusqlite::params![did.as_str(), chrono::Utc::now().timestamp_millis()],
        )
        .unwrap();
    }
    let body = post(
        &client,
        &url,
        Some(&account.access),
        &request("ABCDE-12345"),
    )
    .await
    .ok("signPlcOperation");
    let op = SignedOp::from_json(body["operation"].clone()).expect("a signed operation");
    let plc = PlcClient::new(
        &format!("http://127.0.0.1:{}", server.plc_port),
        &Limits::default(),
    )
    .unwrap();
    let last = plc.last_operation(&did).await.unwrap();
    let UnsignedOp::Operation(fields) = &op.op else {
        panic!("not a plc_operation: {body}");
    };
    assert_eq!(fields.prev, Some(last.cid().to_string()));
    assert_eq!(fields.verification_methods["atproto"], new_key);
    assert_eq!(
        fields.services["atproto_pds"].endpoint,
        "https://new.example.com"
    );
    let UnsignedOp::Operation(last_fields) = &last.op else {
        panic!("last op");
    };
    assert_eq!(fields.rotation_keys, last_fields.rotation_keys);
    assert_eq!(fields.also_known_as, last_fields.also_known_as);
    assert_eq!(
        op.verify(&fields.rotation_keys).unwrap(),
        0,
        "signed by our rotation key"
    );
    // Not submitted; the token is spent.
    assert_eq!(plc.last_operation(&did).await.unwrap(), last);
    let reply = post(
        &client,
        &url,
        Some(&account.access),
        &request("ABCDE-12345"),
    )
    .await;
    assert_refused(&reply, 400, "InvalidToken", "a spent token");

    // The old host's last step: deactivation, deletable after a date.
    post(
        &client,
        &server.xrpc("com.atproto.server.deactivateAccount"),
        Some(&account.access),
        &json!({"deleteAfter": "2099-01-02T03:04:05.000Z"}),
    )
    .await
    .ok("deactivateAccount");
    let conn = rusqlite::Connection::open_with_flags(
        server.data_dir.join("pds.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let (deactivated, delete_after): (Option<i64>, Option<i64>) = conn
        .query_row(
            "SELECT deactivated_at, delete_after FROM account WHERE did = ?1",
            [did.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(deactivated.is_some());
    assert_eq!(delete_after, Some(4_071_006_245_000));
}
