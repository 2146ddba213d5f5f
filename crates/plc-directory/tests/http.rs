//! The HTTP API in process (`tower::ServiceExt::oneshot` on the router, a tempdir database and a
//! manual clock): the life of a DID (create, update, rotate, recover, tombstone), and the refusals,
//! each of which must answer 400 with a reason and leave the audit log byte-for-byte unchanged.

use std::sync::Arc;

use atp_crypto::{Curve, Keypair};
use atp_identity::plc::{PlcOp, SignedOp, UnsignedOp};
use atp_syntax::Did;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode, header};
use chrono::{DateTime, TimeDelta, Utc};
use plc_directory::{HttpState, ManualClock, PlcDirectory, router};
use serde_json::{Value, json};
use tower::ServiceExt;

struct Harness {
    _dir: tempfile::TempDir,
    app: Router,
    clock: Arc<ManualClock>,
}

struct Reply {
    status: StatusCode,
    content_type: String,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    fn message(&self) -> String {
        self.json()["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no message in {}", self.json()))
            .to_owned()
    }
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-03-01T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let directory = PlcDirectory::open(dir.path().join("plc.sqlite")).unwrap();
        let clock = Arc::new(ManualClock::new(t0()));
        let app = router(HttpState::with_clock(directory, clock.clone()));
        Harness {
            _dir: dir,
            app,
            clock,
        }
    }

    async fn request(&self, method: &str, uri: &str, body: Option<Vec<u8>>) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req.body(body.map_or_else(Body::empty, Body::from)).unwrap();
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let content_type = res
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        Reply {
            status,
            content_type,
            body,
        }
    }

    async fn get(&self, uri: &str) -> Reply {
        self.request("GET", uri, None).await
    }

    async fn post(&self, did: &Did, op: &Value) -> Reply {
        let body = serde_json::to_vec(op).unwrap();
        self.request("POST", &format!("/{did}"), Some(body)).await
    }

    /// Posts, advancing the clock a second first; asserts success.
    async fn accept(&self, did: &Did, op: &SignedOp) {
        self.clock.advance(TimeDelta::seconds(1));
        let reply = self.post(did, &op.to_json()).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
    }

    /// Posts and asserts a 400 whose message contains `reason`, with the audit log unchanged.
    async fn refuse(&self, did: &Did, op: &Value, reason: &str) {
        let before = self.get(&format!("/{did}/log/audit")).await;
        let reply = self.post(did, op).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{reason}: {:?}",
            reply.body
        );
        let message = reply.message();
        assert!(
            message.contains(reason),
            "expected {reason:?} in {message:?}"
        );
        let after = self.get(&format!("/{did}/log/audit")).await;
        assert_eq!(
            (before.status, &before.body),
            (after.status, &after.body),
            "audit log changed by a refused operation ({reason})"
        );
    }
}

fn key(seed: u8) -> Keypair {
    Keypair::from_private_bytes(Curve::K256, &[seed; 32]).unwrap()
}

fn p256(seed: u8) -> Keypair {
    Keypair::from_private_bytes(Curve::P256, &[seed; 32]).unwrap()
}

fn genesis(rotation: &[&Keypair], signer: &Keypair) -> (Did, SignedOp) {
    let keys = rotation.iter().map(|k| k.public_key().did_key()).collect();
    let handle = "alice.test".parse().unwrap();
    let op = PlcOp::atproto(
        &key(99).public_key(),
        &handle,
        "https://pds.test",
        keys,
        None,
    );
    let signed = UnsignedOp::Operation(op).sign(signer).unwrap();
    (signed.did().unwrap(), signed)
}

/// An update of `prev` changed by `edit`, signed by `signer`.
fn update(prev: &SignedOp, signer: &Keypair, edit: impl FnOnce(&mut PlcOp)) -> SignedOp {
    let mut op = prev.op.normalize().unwrap();
    op.prev = Some(prev.cid().to_string());
    edit(&mut op);
    UnsignedOp::Operation(op).sign(signer).unwrap()
}

fn set_handle(handle: &str) -> impl FnOnce(&mut PlcOp) {
    let handle = handle.parse().unwrap();
    move |op| op.set_handle(&handle)
}

#[tokio::test]
async fn health_reports_the_version() {
    let h = Harness::new();
    let reply = h.get("/_health").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.json(),
        json!({ "version": env!("CARGO_PKG_VERSION") })
    );
}

#[tokio::test]
async fn unknown_dids_are_404_with_the_reference_message() {
    let h = Harness::new();
    let did = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";
    for suffix in ["", "/data", "/log", "/log/audit", "/log/last"] {
        let reply = h.get(&format!("/{did}{suffix}")).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{suffix}");
        assert_eq!(
            reply.json(),
            json!({ "message": format!("DID not registered: {did}") })
        );
    }
    let reply = h.get("/not-a-did").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.message(), "DID not registered: not-a-did");
}

#[tokio::test]
async fn create_update_rotate_and_tombstone() {
    let h = Harness::new();
    let (k0, k1, k2) = (key(1), p256(2), key(3));
    let (did, g) = genesis(&[&k0, &k1], &k0);
    h.accept(&did, &g).await;

    let doc = h.get(&format!("/{did}")).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert_eq!(doc.content_type, "application/did+ld+json; charset=utf-8");
    let doc = doc.json();
    assert_eq!(doc["id"], did.as_str());
    assert_eq!(doc["alsoKnownAs"], json!(["at://alice.test"]));
    assert_eq!(doc["verificationMethod"][0]["id"], format!("{did}#atproto"));
    assert_eq!(doc["service"][0]["serviceEndpoint"], "https://pds.test");
    // The path may be percent-encoded, as encodeURIComponent writes it.
    let encoded = did.as_str().replace(':', "%3A");
    assert_eq!(
        h.get(&format!("/{encoded}/data")).await.status,
        StatusCode::OK
    );

    // Update handle and PDS with the second rotation key.
    let u1 = update(&g, &k1, |op| {
        op.set_handle(&"alice2.test".parse().unwrap());
        op.set_pds_endpoint("https://pds2.test");
    });
    h.accept(&did, &u1).await;
    // Rotate: k2 first, k0 second; k1 is out.
    let rotated_keys = vec![k2.public_key().did_key(), k0.public_key().did_key()];
    let u2 = update(&u1, &k0, |op| op.rotation_keys = rotated_keys.clone());
    h.accept(&did, &u2).await;
    h.refuse(
        &did,
        &update(&u2, &k1, set_handle("eve.test")).to_json(),
        "no allowed rotation key verifies the signature",
    )
    .await;
    let u3 = update(&u2, &k2, set_handle("alice3.test"));
    h.accept(&did, &u3).await;

    let data = h.get(&format!("/{did}/data")).await.json();
    assert_eq!(data["did"], did.as_str());
    assert_eq!(data["rotationKeys"], json!(rotated_keys));
    assert_eq!(data["alsoKnownAs"], json!(["at://alice3.test"]));
    assert_eq!(
        data["services"]["atproto_pds"]["endpoint"],
        "https://pds2.test"
    );
    let log = h.get(&format!("/{did}/log")).await.json();
    let expected: Vec<Value> = [&g, &u1, &u2, &u3].iter().map(|o| o.to_json()).collect();
    assert_eq!(log, json!(expected));
    assert_eq!(
        h.get(&format!("/{did}/log/last")).await.json(),
        u3.to_json()
    );
    let audit = h.get(&format!("/{did}/log/audit")).await.json();
    let audit = audit.as_array().unwrap();
    assert_eq!(audit.len(), 4);
    for (entry, op) in audit.iter().zip([&g, &u1, &u2, &u3]) {
        assert_eq!(entry["did"], did.as_str());
        assert_eq!(entry["operation"], op.to_json());
        assert_eq!(entry["cid"], op.cid().to_string());
        assert_eq!(entry["nullified"], false);
        assert!(entry["createdAt"].as_str().unwrap().ends_with('Z'));
    }

    let tomb = UnsignedOp::tombstone(&u3.cid()).sign(&k2).unwrap();
    h.accept(&did, &tomb).await;
    for suffix in ["", "/data"] {
        let reply = h.get(&format!("/{did}{suffix}")).await;
        assert_eq!(reply.status, StatusCode::GONE, "{suffix}");
        assert_eq!(
            reply.json(),
            json!({ "message": format!("DID not available: {did}") })
        );
    }
    assert_eq!(
        h.get(&format!("/{did}/log/last")).await.json(),
        tomb.to_json()
    );
    assert_eq!(
        h.get(&format!("/{did}/log"))
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        5
    );
    h.refuse(
        &did,
        &update(&u3, &k2, set_handle("back.test")).to_json(),
        "higher-priority",
    )
    .await;
}

#[tokio::test]
async fn recovery_within_72_hours_nullifies_and_later_is_refused() {
    let h = Harness::new();
    let (k0, k1) = (key(1), key(2));
    let (did, g) = genesis(&[&k0, &k1], &k0);
    h.accept(&did, &g).await;
    let hijack = update(&g, &k1, set_handle("mallory.test"));
    h.accept(&did, &hijack).await;

    // 73 hours after the operation it would displace: too late.
    h.clock.advance(TimeDelta::hours(73));
    let late = update(&g, &k0, set_handle("alice.test"));
    h.refuse(&did, &late.to_json(), "recovery came").await;

    // Within the window, on a second DID: accepted, and the displaced op is nullified.
    let (k2, k3) = (key(3), key(4));
    let (did2, g2) = genesis(&[&k2, &k3], &k2);
    h.accept(&did2, &g2).await;
    let hijack2 = update(&g2, &k3, set_handle("mallory.test"));
    h.accept(&did2, &hijack2).await;
    h.clock.advance(TimeDelta::hours(71));
    let recovery = update(&g2, &k2, set_handle("alice.test"));
    h.accept(&did2, &recovery).await;
    let audit = h.get(&format!("/{did2}/log/audit")).await.json();
    let flags: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["nullified"])
        .collect();
    assert_eq!(flags, [&json!(false), &json!(true), &json!(false)]);
    let log = h.get(&format!("/{did2}/log")).await.json();
    assert_eq!(log, json!([g2.to_json(), recovery.to_json()]));
    // The same key index cannot fork again from the same point.
    let again = update(&g2, &k3, set_handle("mallory2.test"));
    h.refuse(&did2, &again.to_json(), "higher-priority").await;
}

#[tokio::test]
async fn bad_operations_are_refused_and_change_nothing() {
    let h = Harness::new();
    let (k0, k1) = (key(1), key(2));
    let (did, g) = genesis(&[&k0, &k1], &k0);
    h.accept(&did, &g).await;

    // Wrong signer.
    let forged = update(&g, &key(7), set_handle("eve.test"));
    h.refuse(
        &did,
        &forged.to_json(),
        "no allowed rotation key verifies the signature",
    )
    .await;

    // Broken prev: the CID of an operation of another DID.
    let (_, other) = genesis(&[&key(8)], &key(8));
    let broken = update(&other, &k0, set_handle("eve.test"));
    h.refuse(
        &did,
        &broken.to_json(),
        "is not an earlier operation of this DID",
    )
    .await;

    // A padded base64url signature (it would verify if decoded leniently).
    let good = update(&g, &k0, set_handle("bob.test"));
    let mut padded = good.to_json();
    padded["sig"] = json!(format!("{}==", good.sig));
    h.refuse(&did, &padded, "bad signature encoding").await;
    // A truncated signature.
    let mut truncated = good.to_json();
    truncated["sig"] = json!(&good.sig[..good.sig.len() - 4]);
    h.refuse(&did, &truncated, "bad signature encoding").await;

    // A genesis posted under a DID it does not derive: an existing one, and an unknown one.
    let (_, g2) = genesis(&[&key(5)], &key(5));
    h.refuse(&did, &g2.to_json(), "unexpected genesis").await;
    let unrelated: Did = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa".parse().unwrap();
    h.refuse(&unrelated, &g2.to_json(), "derives").await;
    assert_eq!(
        h.get(&format!("/{unrelated}")).await.status,
        StatusCode::NOT_FOUND
    );

    // Not an operation at all, bad JSON, an invalid DID in the path.
    h.refuse(
        &did,
        &json!({ "type": "plc_operation" }),
        "Not a valid operation",
    )
    .await;
    let reply = h
        .request("POST", &format!("/{did}"), Some(b"{not json".to_vec()))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.message().starts_with("Invalid JSON"));
    let reply = h
        .request(
            "POST",
            "/did:nope",
            Some(serde_json::to_vec(&good.to_json()).unwrap()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    // The valid one still goes through afterwards.
    h.accept(&did, &good).await;
}

#[tokio::test]
async fn policy_refuses_legacy_creates_and_empty_rotation_keys() {
    let h = Harness::new();
    let k = key(1);
    let legacy = json!({
        "type": "create",
        "signingKey": k.public_key().did_key(),
        "recoveryKey": k.public_key().did_key(),
        "handle": "alice.test",
        "service": "https://pds.test",
        "prev": null,
    });
    let op: UnsignedOp = serde_json::from_value(legacy).unwrap();
    let signed = op.sign(&k).unwrap();
    let did = signed.did().unwrap();
    h.refuse(&did, &signed.to_json(), "legacy create").await;

    let (did, g) = genesis(&[], &k);
    h.refuse(&did, &g.to_json(), "at least one rotation key")
        .await;
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let h = Harness::new();
    let (did, _) = genesis(&[&key(1)], &key(1));
    let body = vec![b' '; plc_directory::http::MAX_BODY_BYTES + 1];
    let reply = h.request("POST", &format!("/{did}"), Some(body)).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(!reply.message().is_empty());
}

#[tokio::test]
async fn export_is_json_lines_paged_by_created_at() {
    let h = Harness::new();
    let mut cids = Vec::new();
    for seed in 1..=3u8 {
        let (did, g) = genesis(&[&key(seed)], &key(seed));
        h.accept(&did, &g).await;
        cids.push(g.cid().to_string());
    }
    let reply = h.get("/export").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.content_type, "application/jsonlines");
    let text = String::from_utf8(reply.body.to_vec()).unwrap();
    let lines: Vec<Value> = text
        .split('\n')
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<&str> = lines.iter().map(|l| l["cid"].as_str().unwrap()).collect();
    assert_eq!(got, cids);

    let after = lines[0]["createdAt"].as_str().unwrap();
    let reply = h.get(&format!("/export?after={after}&count=1")).await;
    let page: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(page["cid"], cids[1].as_str());
    for bad in ["count=0", "count=x", "after=yesterday"] {
        let reply = h.get(&format!("/export?{bad}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
    }
}
