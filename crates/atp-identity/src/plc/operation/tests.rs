//! Unit tests of operation encoding, signing and verification.

use atp_crypto::Curve;
use serde_json::json;

use super::*;
use crate::fixtures::{keypair, to_high_s};

fn genesis(rotation: &[&atp_crypto::Keypair]) -> PlcOp {
    let signing = keypair(Curve::K256, 9).public_key();
    let keys = rotation.iter().map(|k| k.did_key()).collect();
    PlcOp::atproto(
        &signing,
        &"alice.test".parse().unwrap(),
        "pds.example.com",
        keys,
        None,
    )
}

#[test]
fn atproto_op_shape() {
    let op = genesis(&[&keypair(Curve::P256, 1)]);
    assert_eq!(op.also_known_as, vec!["at://alice.test"]);
    assert_eq!(
        op.services["atproto_pds"].endpoint,
        "https://pds.example.com"
    );
    assert_eq!(
        op.services["atproto_pds"].service_type,
        "AtprotoPersonalDataServer"
    );
    assert!(op.verification_methods["atproto"].starts_with("did:key:zQ3s"));
    let json = serde_json::to_value(UnsignedOp::Operation(op)).unwrap();
    assert_eq!(json["type"], "plc_operation");
    assert_eq!(json["prev"], serde_json::Value::Null);
    assert!(json.get("sig").is_none());
}

#[test]
fn sign_verify_cid_did() {
    let (a, b) = (keypair(Curve::P256, 1), keypair(Curve::K256, 2));
    let signed = UnsignedOp::Operation(genesis(&[&a, &b])).sign(&b).unwrap();
    let keys = [a.did_key(), b.did_key()];
    assert_eq!(signed.verify(&keys), Ok(1));
    assert_eq!(
        signed.verify(&keys[..1]),
        Err(SignatureError::NoMatchingKey)
    );
    assert_eq!(signed.verify(&[]), Err(SignatureError::NoKeys));
    let bad = ["did:key:zzz".to_owned(), b.did_key()];
    assert!(matches!(
        signed.verify(&bad),
        Err(SignatureError::InvalidKey { index: 0, .. })
    ));
    let did = signed.did().unwrap();
    assert_eq!(did.as_str().len(), 32);
    assert!(did.as_str().starts_with("did:plc:"));
    let expected_id = data_encoding::BASE32_NOPAD
        .encode(&Sha256::digest(signed.to_cbor()))
        .to_ascii_lowercase();
    assert_eq!(&did.as_str()[8..], &expected_id[..24]);
    assert!(signed.cid().to_string().starts_with("bafyrei"));
    let update = UnsignedOp::tombstone(&signed.cid()).sign(&a).unwrap();
    assert_eq!(update.did(), Err(OpError::NotGenesis));
    assert_eq!(update.op.prev_cid().unwrap(), Some(signed.cid()));
}

#[test]
fn strict_signature_encoding() {
    let a = keypair(Curve::K256, 1);
    let signed = UnsignedOp::Operation(genesis(&[&a])).sign(&a).unwrap();
    let keys = [a.did_key()];
    for bad in [
        format!("{}=", signed.sig),
        format!("{}\n", signed.sig),
        signed.sig.replace('-', "+"),
    ] {
        let op = SignedOp {
            sig: bad,
            ..signed.clone()
        };
        if op.sig != signed.sig {
            assert_eq!(
                op.verify(&keys),
                Err(SignatureError::Base64),
                "{:?}",
                op.sig
            );
        }
    }
    let short = SignedOp {
        sig: b64url::encode(&[1; 63]),
        ..signed.clone()
    };
    assert_eq!(short.verify(&keys), Err(SignatureError::Length { len: 63 }));
    for curve in [Curve::K256, Curve::P256] {
        let key = keypair(curve, 3);
        let signed = UnsignedOp::Operation(genesis(&[&key])).sign(&key).unwrap();
        let high = to_high_s(curve, &signed.signature_bytes().unwrap());
        let op = SignedOp {
            sig: b64url::encode(&high),
            ..signed
        };
        assert_eq!(
            op.verify(&[key.did_key()]),
            Err(SignatureError::HighS),
            "{curve}"
        );
    }
}

#[test]
fn json_is_strict() {
    let a = keypair(Curve::K256, 1);
    let signed = UnsignedOp::Operation(genesis(&[&a])).sign(&a).unwrap();
    let json = signed.to_json();
    assert_eq!(SignedOp::from_json(json.clone()).unwrap(), signed);
    let mut extra = json.clone();
    extra["extra"] = json!(1);
    assert!(SignedOp::from_json(extra).is_err(), "unknown field");
    let mut no_prev = json.clone();
    no_prev.as_object_mut().unwrap().remove("prev");
    assert!(
        SignedOp::from_json(no_prev).is_err(),
        "prev must be present"
    );
    let mut no_sig = json.clone();
    no_sig.as_object_mut().unwrap().remove("sig");
    assert!(
        SignedOp::from_json(no_sig.clone()).is_err(),
        "signed op needs sig"
    );
    assert!(serde_json::from_value::<UnsignedOp>(no_sig).is_ok());
    assert!(
        serde_json::from_value::<UnsignedOp>(json).is_err(),
        "unsigned op has no sig"
    );
    let mut bad_service = signed.to_json();
    bad_service["services"]["atproto_pds"]["x"] = json!("y");
    assert!(SignedOp::from_json(bad_service).is_err());
    assert!(SignedOp::from_json(json!({"type": "plc_unknown", "sig": "x"})).is_err());
    let tomb = json!({"type": "plc_tombstone", "prev": "bafyreigp6shzy6dlcxuowwoxz7u5nemdrkad2my5zwzpwilcnhih7bw6si", "sig": "x"});
    assert!(SignedOp::from_json(tomb).unwrap().op.is_tombstone());
}

#[test]
fn legacy_create_normalises_like_the_reference() {
    let (signing, recovery) = (keypair(Curve::K256, 1), keypair(Curve::K256, 2));
    let create = LegacyCreate {
        signing_key: signing.did_key(),
        recovery_key: recovery.did_key(),
        handle: "https://alice.test".into(),
        service: "pds.example.com".into(),
    };
    let normal = create.normalize();
    assert_eq!(
        normal.rotation_keys,
        vec![recovery.did_key(), signing.did_key()]
    );
    assert_eq!(normal.verification_methods["atproto"], signing.did_key());
    assert_eq!(normal.also_known_as, vec!["at://alice.test"]);
    assert_eq!(
        normal.services["atproto_pds"].endpoint,
        "https://pds.example.com"
    );
    let signed = UnsignedOp::LegacyCreate(create).sign(&signing).unwrap();
    assert_eq!(signed.verify(&signed.op.rotation_keys()), Ok(1));
    let json = signed.to_json();
    assert_eq!(json["type"], "create");
    assert_eq!(json["prev"], serde_json::Value::Null);
    assert_eq!(SignedOp::from_json(json.clone()).unwrap(), signed);
    let mut with_prev = json;
    with_prev["prev"] = json!("bafyreigp6shzy6dlcxuowwoxz7u5nemdrkad2my5zwzpwilcnhih7bw6si");
    assert!(SignedOp::from_json(with_prev).is_err());
}

#[test]
fn prefixes_mirror_the_reference() {
    assert_eq!(ensure_atproto_prefix("at://a.test"), "at://a.test");
    assert_eq!(ensure_atproto_prefix("a.test"), "at://a.test");
    assert_eq!(ensure_atproto_prefix("http://a.test"), "at://a.test");
    assert_eq!(ensure_http_prefix("http://a.test"), "http://a.test");
    assert_eq!(ensure_http_prefix("a.test"), "https://a.test");
}

#[test]
fn set_handle_replaces_first_at_uri() {
    let mut op = genesis(&[&keypair(Curve::K256, 1)]);
    op.also_known_as = vec![
        "https://x".into(),
        "at://old.test".into(),
        "at://other.test".into(),
    ];
    op.set_handle(&"new.test".parse().unwrap());
    assert_eq!(
        op.also_known_as,
        vec!["https://x", "at://new.test", "at://other.test"]
    );
    op.also_known_as = vec!["https://x".into()];
    op.set_handle(&"new.test".parse().unwrap());
    assert_eq!(op.also_known_as, vec!["at://new.test", "https://x"]);
}
