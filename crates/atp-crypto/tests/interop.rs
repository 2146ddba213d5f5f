//! Conformance against the atproto interop vectors (see `tests/vectors/INDEX.md`):
//! - `crypto/signature-fixtures.json`: key decoding, strict and lenient verification, and the
//!   legacy `publicKeyMultibase` form;
//! - `crypto/w3c_didkey_P256.json`: private scalar → `did:key`;
//! - indigo's `greenground.didDoc.json` (legacy uncompressed K-256 multibase) and
//!   `did_plc_doc.json` (the same key as a Multikey);
//! - indigo's relay scenarios, whose account keys are multikeys.

use atp_crypto::{Curve, Keypair, PublicKey, VerifyError};
use data_encoding::{BASE64, Encoding};
use serde_json::Value;

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/vectors/");

fn load(relative: &str) -> Value {
    let path = format!("{VECTORS}{relative}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Standard-alphabet base64, padding optional, trailing bits not checked (INDEX.md).
fn lenient_base64(text: &str) -> Result<Vec<u8>, data_encoding::DecodeError> {
    let mut spec = BASE64.specification();
    spec.padding = None;
    spec.check_trailing_bits = false;
    let encoding: Encoding = spec.encoding().unwrap();
    encoding.decode(text.trim_end_matches('=').as_bytes())
}

fn str_field<'a>(value: &'a Value, field: &str, at: &str) -> &'a str {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("{at}: missing string field {field}"))
}

/// One entry of `signature-fixtures.json`.
fn check_signature_fixture(fixture: &Value, at: &str) {
    let curve = match str_field(fixture, "algorithm", at) {
        "ES256" => Curve::P256,
        "ES256K" => Curve::K256,
        other => panic!("{at}: unknown algorithm {other}"),
    };
    let did = str_field(fixture, "publicKeyDid", at);
    let key = PublicKey::from_did_key(did).unwrap_or_else(|e| panic!("{at}: {did}: {e}"));
    assert_eq!(key.curve(), curve, "{at}: curve");
    assert_eq!(
        key.jwt_alg(),
        str_field(fixture, "algorithm", at),
        "{at}: jwt alg"
    );
    assert_eq!(key.did_key(), did, "{at}: did:key round trip");
    assert_eq!(
        Curve::from_legacy_key_type(str_field(fixture, "didDocSuite", at)),
        Some(curve),
        "{at}: didDocSuite"
    );

    // Legacy multibase: derived from the did:key, and parsed back to the same key.
    let legacy = str_field(fixture, "publicKeyMultibase", at);
    assert_eq!(key.legacy_multibase(), legacy, "{at}: legacy multibase");
    let parsed = PublicKey::from_legacy_multibase(curve, legacy)
        .unwrap_or_else(|e| panic!("{at}: legacy multibase: {e}"));
    assert_eq!(parsed, key, "{at}: legacy multibase decodes to the did:key");

    let msg = lenient_base64(str_field(fixture, "messageBase64", at))
        .unwrap_or_else(|e| panic!("{at}: messageBase64: {e}"));
    let sig = lenient_base64(str_field(fixture, "signatureBase64", at))
        .unwrap_or_else(|e| panic!("{at}: signatureBase64: {e}"));
    let expected = fixture["validSignature"]
        .as_bool()
        .unwrap_or_else(|| panic!("{at}: validSignature"));
    let tags: Vec<&str> = fixture["tags"]
        .as_array()
        .unwrap_or_else(|| panic!("{at}: tags"))
        .iter()
        .map(|t| t.as_str().unwrap_or_else(|| panic!("{at}: tag")))
        .collect();

    let strict = key.verify(&msg, &sig);
    assert_eq!(
        strict.is_ok(),
        expected,
        "{at}: strict verify gave {strict:?}"
    );
    if tags.contains(&"high-s") {
        assert_eq!(
            strict,
            Err(VerifyError::HighS { curve }),
            "{at}: high-S reason"
        );
    }
    if tags.contains(&"der-encoded") {
        assert!(
            matches!(
                strict,
                Err(VerifyError::SignatureLength { der_like: true, .. })
            ),
            "{at}: DER reason: {strict:?}"
        );
    }

    let lenient = key.verify_lenient(&msg, &sig);
    if expected || tags == ["high-s"] {
        assert_eq!(lenient, Ok(()), "{at}: lenient verify");
    } else {
        assert!(lenient.is_err(), "{at}: lenient verify accepted {tags:?}");
    }
}

#[test]
fn signature_fixtures() {
    let file = "crypto/signature-fixtures.json";
    let fixtures = load(file);
    let fixtures = fixtures.as_array().expect("array");
    assert!(!fixtures.is_empty(), "{file}: no fixtures");
    let mut seen_tags = Vec::new();
    for (index, fixture) in fixtures.iter().enumerate() {
        let comment = fixture["comment"].as_str().unwrap_or("");
        check_signature_fixture(fixture, &format!("{file}[{index}] ({comment})"));
        if let Some(tags) = fixture["tags"].as_array() {
            seen_tags.extend(tags.iter().filter_map(Value::as_str).map(str::to_owned));
        }
    }
    for tag in ["high-s", "der-encoded"] {
        assert!(
            seen_tags.iter().any(|t| t == tag),
            "{file}: no {tag} fixture"
        );
    }
}

/// One entry of `w3c_didkey_P256.json`.
fn check_w3c_p256(entry: &Value, at: &str) {
    let private = bs58::decode(str_field(entry, "privateKeyBytesBase58", at))
        .into_vec()
        .unwrap_or_else(|e| panic!("{at}: base58: {e}"));
    let key = Keypair::from_private_bytes(Curve::P256, &private)
        .unwrap_or_else(|e| panic!("{at}: private key: {e}"));
    assert_eq!(key.did_key(), str_field(entry, "publicDidKey", at), "{at}");
    // Round trip through the did:key too, and sign/verify with the vector key.
    let public = PublicKey::from_did_key(str_field(entry, "publicDidKey", at)).unwrap();
    assert_eq!(public.verify(b"w3c", &key.sign(b"w3c")), Ok(()), "{at}");
}

#[test]
fn w3c_did_key_p256() {
    let file = "crypto/w3c_didkey_P256.json";
    let entries = load(file);
    let entries = entries.as_array().expect("array");
    assert!(!entries.is_empty(), "{file}: no entries");
    for (index, entry) in entries.iter().enumerate() {
        check_w3c_p256(entry, &format!("{file}[{index}]"));
    }
}

/// The `#atproto` verification method of a DID document, as a public key, whichever form it uses.
fn atproto_key(doc: &Value, at: &str) -> PublicKey {
    let methods = doc["verificationMethod"]
        .as_array()
        .unwrap_or_else(|| panic!("{at}: verificationMethod"));
    let method = methods
        .iter()
        .find(|m| m["id"].as_str().is_some_and(|id| id.ends_with("#atproto")))
        .unwrap_or_else(|| panic!("{at}: no #atproto method"));
    let multibase = str_field(method, "publicKeyMultibase", at);
    match str_field(method, "type", at) {
        "Multikey" => PublicKey::from_multikey(multibase),
        legacy => {
            let curve = Curve::from_legacy_key_type(legacy)
                .unwrap_or_else(|| panic!("{at}: unknown key type {legacy}"));
            PublicKey::from_legacy_multibase(curve, multibase)
        }
    }
    .unwrap_or_else(|e| panic!("{at}: {multibase}: {e}"))
}

#[test]
fn legacy_uncompressed_did_doc_key() {
    let legacy_file = "extra/indigo/testing/testdata/greenground.didDoc.json";
    let multikey_file = "extra/indigo/atproto/identity/testdata/did_plc_doc.json";
    let legacy = atproto_key(&load(legacy_file), legacy_file);
    let current = atproto_key(&load(multikey_file), multikey_file);
    assert_eq!(legacy.curve(), Curve::K256, "{legacy_file}");
    assert_eq!(
        legacy.did_key(),
        "did:key:zQ3shXjHeiBuRCKmM36cuYnm7YEMzhGnCmCyW92sRJ9pribSF",
        "{legacy_file}"
    );
    assert_eq!(legacy, current, "{legacy_file} vs {multikey_file}");
}

#[test]
fn relay_scenario_account_keys() {
    let dir = "extra/indigo/cmd/relay/testing/testdata/";
    let mut checked = 0;
    let mut names: Vec<_> = std::fs::read_dir(format!("{VECTORS}{dir}"))
        .expect("relay testdata")
        .map(|entry| {
            entry
                .expect("dir entry")
                .file_name()
                .into_string()
                .expect("utf-8")
        })
        .filter(|name| name.ends_with(".json"))
        .collect();
    names.sort();
    for name in names {
        let file = format!("{dir}{name}");
        let scenario = load(&file);
        let accounts = scenario["accounts"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        for (index, account) in accounts.iter().enumerate() {
            let at = format!("{file} accounts[{index}]");
            let multikey = account["identity"]["keys"]["atproto"]["publicKeyMultibase"]
                .as_str()
                .unwrap_or_else(|| panic!("{at}: no atproto key"));
            let key = PublicKey::from_multikey(multikey).unwrap_or_else(|e| panic!("{at}: {e}"));
            assert_eq!(key.multikey(), multikey, "{at}: multikey round trip");
            let did = format!("did:key:{multikey}");
            assert_eq!(PublicKey::from_did_key(&did).unwrap(), key, "{at}: did:key");
            checked += 1;
        }
    }
    assert!(checked > 0, "{dir}: no account keys found");
}
