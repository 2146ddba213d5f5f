//! Conformance against the vectors in `tests/vectors/` (see `tests/vectors/INDEX.md`):
//! did-method-plc audit logs (valid and invalid) and indigo / atproto DID documents.

use std::path::{Path, PathBuf};

use atp_crypto::PublicKey;
use atp_identity::did_doc::{DidDocError, DidDocument};
use atp_identity::plc::{AuditFailure, LogEntry, PlcState, SignatureError, validate_audit_log};
use atp_syntax::Did;

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/vectors");
const AUDIT_LOGS: &str = "extra/did-method-plc/interop_tests/audit_log";

fn vector(rel: &str) -> PathBuf {
    Path::new(VECTORS).join(rel)
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn log_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(vector(&format!("{AUDIT_LOGS}/{dir}")))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no vectors in {dir}");
    files
}

/// Parses an audit log and checks what holds for every vector, valid or not: each entry parses,
/// re-serialises to the same JSON, carries the CID of its operation, and the genesis operation
/// derives the log's DID.
fn load_log(path: &Path) -> (Did, Vec<LogEntry>) {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let raw = read_json(path);
    let raw_entries = raw
        .as_array()
        .unwrap_or_else(|| panic!("{name}: not an array"));
    let mut entries = Vec::new();
    for (i, raw_entry) in raw_entries.iter().enumerate() {
        let entry: LogEntry = serde_json::from_value(raw_entry.clone())
            .unwrap_or_else(|e| panic!("{name}[{i}]: does not parse: {e}"));
        assert_eq!(
            entry.operation.to_json(),
            raw_entry["operation"],
            "{name}[{i}]: operation does not re-serialise to the same JSON"
        );
        assert_eq!(
            entry.operation.cid(),
            entry.cid,
            "{name}[{i}]: cid differs from ours"
        );
        if entry.operation.op.is_genesis() {
            assert_eq!(
                entry.operation.did().unwrap(),
                entry.did,
                "{name}[{i}]: DID derivation"
            );
        }
        entries.push(entry);
    }
    let did = entries
        .first()
        .unwrap_or_else(|| panic!("{name}: empty"))
        .did
        .clone();
    (did, entries)
}

fn check_valid_log(path: &Path) {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let (did, entries) = load_log(path);
    let audited = validate_audit_log(&did, &entries).unwrap_or_else(|e| panic!("{name}: {e}"));
    let last = entries.iter().rev().find(|e| !e.nullified).unwrap();
    assert_eq!(audited.head, last.cid, "{name}: head");
    assert_eq!(
        audited.state,
        PlcState::after(&did, &last.operation.op),
        "{name}: final state"
    );
    if let PlcState::Active(data) = &audited.state {
        assert_eq!(data.did, did, "{name}: data DID");
        let doc = data.to_did_document();
        assert_eq!(doc.id, did, "{name}: document id");
        if let Some(key) = data.atproto_key() {
            let from_doc = doc.signing_key().unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(from_doc.did_key(), key, "{name}: document signing key");
        }
    }
}

#[test]
fn audit_logs_valid() {
    let files = log_files("valid");
    for path in &files {
        check_valid_log(path);
    }
    assert_eq!(files.len(), 7);
}

#[test]
fn audit_log_robocracy_state() {
    let (did, entries) = load_log(&vector(&format!(
        "{AUDIT_LOGS}/valid/log_bnewbold_robocracy.json"
    )));
    let audited = validate_audit_log(&did, &entries).unwrap();
    let data = audited.state.data().unwrap();
    assert_eq!(
        data.atproto_key(),
        Some("did:key:zQ3shazA2airLo8gNJvxGMFZWPJDRkLGNR6mn9Txsc8YYndwy")
    );
}

#[test]
fn audit_log_tombstone_ends_inactive() {
    let (did, entries) = load_log(&vector(&format!("{AUDIT_LOGS}/valid/log_tombstone.json")));
    assert_eq!(
        validate_audit_log(&did, &entries).unwrap().state,
        PlcState::Tombstoned
    );
}

/// The documented reason each invalid log fails for, and at which entry.
fn expected_failure(name: &str) -> (usize, fn(&AuditFailure) -> bool) {
    match name {
        "log_invalid_nullification_reused_key.json" => {
            (2, |f| matches!(f, AuditFailure::InsufficientKeyPriority))
        }
        "log_invalid_sig_b64_newline.json"
        | "log_invalid_sig_b64_padding_bits.json"
        | "log_invalid_sig_b64_padding_chars.json" => (0, |f| {
            matches!(
                f,
                AuditFailure::BadSignatureEncoding(SignatureError::Base64)
            )
        }),
        // This DER signature happens to be exactly 64 bytes (`30 3e 02 1d …`), so it is read as
        // `r ‖ s` and simply does not verify (see `der_vector_is_64_bytes`).
        "log_invalid_sig_der.json" => (0, |f| {
            matches!(f, AuditFailure::BadSignature(SignatureError::NoMatchingKey))
        }),
        "log_invalid_sig_k256_high_s.json" => (0, |f| {
            matches!(f, AuditFailure::BadSignature(SignatureError::HighS))
        }),
        "log_invalid_update_tombstoned.json" => {
            (2, |f| matches!(f, AuditFailure::Tombstoned { .. }))
        }
        other => panic!("{other}: no documented failure; add it to INDEX.md and here"),
    }
}

#[test]
fn audit_logs_invalid() {
    let files = log_files("invalid");
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let (did, entries) = load_log(path);
        let err = validate_audit_log(&did, &entries).expect_err(&name);
        let (index, is_expected) = expected_failure(&name);
        assert_eq!(err.index, index, "{name}: failing entry ({err})");
        assert!(is_expected(&err.failure), "{name}: wrong reason: {err}");
    }
    assert_eq!(files.len(), 7);
}

/// The padding vectors are only invalid because of their encoding: decoded leniently, the
/// signature verifies. This proves the strictness is what rejects them.
#[test]
fn lenient_base64_would_accept_padding_vectors() {
    let lenient = {
        let mut spec = data_encoding::BASE64URL_NOPAD.specification();
        spec.check_trailing_bits = false;
        spec.encoding().unwrap()
    };
    for name in [
        "log_invalid_sig_b64_padding_bits.json",
        "log_invalid_sig_b64_padding_chars.json",
    ] {
        let (_, entries) = load_log(&vector(&format!("{AUDIT_LOGS}/invalid/{name}")));
        let op = &entries[0].operation;
        let sig = lenient
            .decode(op.sig.trim_end_matches('=').as_bytes())
            .unwrap();
        let key = PublicKey::from_did_key(&op.op.rotation_keys()[0]).unwrap();
        assert_eq!(key.verify(&op.op.to_cbor(), &sig), Ok(()), "{name}");
    }
}

#[test]
fn der_vector_is_64_bytes() {
    let (_, entries) = load_log(&vector(&format!(
        "{AUDIT_LOGS}/invalid/log_invalid_sig_der.json"
    )));
    let sig = entries[0].operation.signature_bytes().unwrap();
    assert_eq!(&sig[..2], &[0x30, 62], "a DER SEQUENCE of 62 bytes");
}

fn load_doc(rel: &str) -> DidDocument {
    let path = vector(rel);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    DidDocument::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn indigo_did_plc_doc() {
    let doc = load_doc("extra/indigo/atproto/identity/testdata/did_plc_doc.json");
    assert_eq!(doc.id.as_str(), "did:plc:ewvi7nxzyoun6zhxrhs64oiz");
    assert!(doc.ensure_id(&doc.id.clone()).is_ok());
    assert_eq!(doc.handle().unwrap().as_str(), "atproto.com");
    assert_eq!(doc.pds_endpoint().unwrap(), "https://bsky.social");
    assert_eq!(
        doc.signing_key().unwrap().multikey(),
        "zQ3shXjHeiBuRCKmM36cuYnm7YEMzhGnCmCyW92sRJ9pribSF"
    );
}

#[test]
fn indigo_did_web_doc() {
    let doc = load_doc("extra/indigo/atproto/identity/testdata/did_web_doc.json");
    assert_eq!(doc.id.as_str(), "did:web:discover.bsky.social");
    assert!(matches!(
        doc.signing_key(),
        Err(DidDocError::KeyNotDeclared { .. })
    ));
    assert!(matches!(
        doc.pds_endpoint(),
        Err(DidDocError::ServiceNotDeclared { .. })
    ));
    assert_eq!(doc.handle(), Err(DidDocError::HandleNotDeclared));
    assert_eq!(
        doc.service_endpoint("bsky_fg", "BskyFeedGenerator")
            .unwrap(),
        "https://discover.bsky.social"
    );
    assert_eq!(
        doc.to_json()["authentication"],
        serde_json::Value::Null,
        "unknown fields kept"
    );
}

#[test]
fn greenground_legacy_key() {
    let doc = load_doc("extra/indigo/testing/testdata/greenground.didDoc.json");
    assert_eq!(
        doc.signing_key().unwrap().did_key(),
        "did:key:zQ3shXjHeiBuRCKmM36cuYnm7YEMzhGnCmCyW92sRJ9pribSF"
    );
    assert_eq!(doc.handle().unwrap().as_str(), "greenground.bsky.social");
    assert_eq!(doc.pds_endpoint().unwrap(), "https://bsky.social");
}
