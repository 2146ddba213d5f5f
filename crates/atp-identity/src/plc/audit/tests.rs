//! Unit tests of audit-log replay and directory acceptance: lifecycles, recovery, policy.

use atp_crypto::{Curve, Keypair};
use chrono::TimeZone;

use super::*;
use crate::fixtures::keypair;
use crate::plc::PlcData;
use crate::plc::operation::{LegacyCreate, PlcOp, UnsignedOp};

fn t(hours: i64) -> DateTime<Utc> {
    let t0 = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).single().unwrap();
    t0 + TimeDelta::hours(hours)
}

/// A DID's log as a directory would keep it.
struct Log {
    did: Did,
    entries: Vec<LogEntry>,
}

impl Log {
    /// Creates a DID with rotation keys `rotation`, signed by `signer`.
    fn create(rotation: &[&Keypair], signer: &Keypair) -> Log {
        let op = UnsignedOp::Operation(atproto_op(rotation, None))
            .sign(signer)
            .unwrap();
        let mut log = Log {
            did: op.did().unwrap(),
            entries: Vec::new(),
        };
        log.submit(op, t(0)).unwrap();
        log
    }

    fn submit(&mut self, op: SignedOp, at: DateTime<Utc>) -> Result<AcceptedOp, NewOpError> {
        let accepted = validate_new_op(&self.did, &self.entries, &op, at)?;
        for entry in &mut self.entries {
            if accepted.nullified.contains(&entry.cid) {
                entry.nullified = true;
            }
        }
        self.push(op, at);
        Ok(accepted)
    }

    /// Appends without any check (to build historical logs policy would refuse today).
    fn push(&mut self, op: SignedOp, at: DateTime<Utc>) {
        self.entries.push(LogEntry {
            did: self.did.clone(),
            cid: op.cid(),
            operation: op,
            nullified: false,
            created_at: at,
        });
    }

    fn cid(&self, i: usize) -> Cid {
        self.entries[i].cid
    }

    fn data(&self) -> PlcData {
        let audited = validate_audit_log(&self.did, &self.entries).unwrap();
        audited.state.data().cloned().unwrap()
    }

    /// An update of the current state with `edit` applied, following entry `prev`.
    fn update(&self, prev: usize, edit: impl FnOnce(&mut PlcOp), signer: &Keypair) -> SignedOp {
        let mut op = PlcOp::update_of(&self.data(), &self.cid(prev));
        edit(&mut op);
        UnsignedOp::Operation(op).sign(signer).unwrap()
    }
}

fn atproto_op(rotation: &[&Keypair], prev: Option<&Cid>) -> PlcOp {
    let keys = rotation.iter().map(|k| k.did_key()).collect();
    let signing = keypair(Curve::K256, 99).public_key();
    PlcOp::atproto(
        &signing,
        &"alice.test".parse().unwrap(),
        "https://pds.test",
        keys,
        prev,
    )
}

fn rejected(result: Result<AcceptedOp, NewOpError>) -> AuditFailure {
    match result {
        Err(NewOpError::Rejected(failure)) => failure,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn genesis_update_rotation_tombstone() {
    let (k1, k2, k3) = (
        keypair(Curve::K256, 1),
        keypair(Curve::P256, 2),
        keypair(Curve::K256, 3),
    );
    let mut log = Log::create(&[&k1, &k2], &k2);
    let renamed = log.update(0, |op| op.set_handle(&"bob.test".parse().unwrap()), &k2);
    let accepted = log.submit(renamed, t(1)).unwrap();
    assert_eq!(accepted.prev, Some(log.cid(0)));
    assert!(accepted.nullified.is_empty());
    assert_eq!(log.data().also_known_as, vec!["at://bob.test"]);

    let rotate = log.update(
        1,
        |op| op.rotation_keys = vec![k1.did_key(), k3.did_key()],
        &k1,
    );
    log.submit(rotate, t(2)).unwrap();
    let by_removed_key = log.update(2, |_| {}, &k2);
    let failure = rejected(log.submit(by_removed_key, t(3)));
    assert_eq!(
        failure,
        AuditFailure::BadSignature(SignatureError::NoMatchingKey)
    );
    let by_new_key = log.update(2, |op| op.set_pds_endpoint("https://pds2.test"), &k3);
    log.submit(by_new_key, t(3)).unwrap();
    assert_eq!(log.data().pds_endpoint(), Some("https://pds2.test"));

    let tombstone = UnsignedOp::tombstone(&log.cid(3)).sign(&k3).unwrap();
    let accepted = log.submit(tombstone, t(4)).unwrap();
    assert_eq!(accepted.state, PlcState::Tombstoned);
    let audited = validate_audit_log(&log.did, &log.entries).unwrap();
    assert_eq!(audited.state, PlcState::Tombstoned);
    assert_eq!(audited.head, log.cid(4));

    let after = UnsignedOp::Operation(atproto_op(&[&k3], Some(&log.cid(4))))
        .sign(&k3)
        .unwrap();
    assert_eq!(
        rejected(log.submit(after, t(5))),
        AuditFailure::Tombstoned { prev: log.cid(4) }
    );
}

#[test]
fn recovery_within_window_nullifies() {
    let (k1, k2) = (keypair(Curve::K256, 1), keypair(Curve::K256, 2));
    let mut log = Log::create(&[&k1, &k2], &k2);
    let hijack = log.update(0, |op| op.rotation_keys = vec![k2.did_key()], &k2);
    log.submit(hijack, t(1)).unwrap();
    let more = log.update(1, |op| op.set_handle(&"evil.test".parse().unwrap()), &k2);
    log.submit(more, t(2)).unwrap();

    let recovery = UnsignedOp::Operation(atproto_op(&[&k1], Some(&log.cid(0))))
        .sign(&k1)
        .unwrap();
    let accepted = log.submit(recovery, t(73)).unwrap();
    assert_eq!(accepted.nullified, vec![log.cid(1), log.cid(2)]);
    assert_eq!(accepted.prev, Some(log.cid(0)));
    let audited = validate_audit_log(&log.did, &log.entries).unwrap();
    assert_eq!(audited.head, log.cid(3));
    assert_eq!(
        audited.state.data().unwrap().rotation_keys,
        vec![k1.did_key()]
    );

    let mut lying = log.entries.clone();
    lying[2].nullified = false;
    let err = validate_audit_log(&log.did, &lying).unwrap_err();
    assert_eq!(err.index, 2);
    assert_eq!(
        err.failure,
        AuditFailure::NullifiedMismatch {
            claimed: false,
            computed: true
        }
    );

    let onto_nullified = log.update(2, |_| {}, &k2);
    assert_eq!(
        rejected(log.submit(onto_nullified, t(74))),
        AuditFailure::PrevNullified { prev: log.cid(2) }
    );
}

#[test]
fn late_recovery_refused_exactly_72h_allowed() {
    let (k1, k2) = (keypair(Curve::K256, 1), keypair(Curve::K256, 2));
    let mut log = Log::create(&[&k1, &k2], &k2);
    log.submit(log.update(0, |_| {}, &k2), t(1)).unwrap();
    let recovery = UnsignedOp::Operation(atproto_op(&[&k1], Some(&log.cid(0))))
        .sign(&k1)
        .unwrap();
    let late = t(73) + TimeDelta::seconds(1);
    let failure = rejected(validate_new_op(&log.did, &log.entries, &recovery, late));
    assert_eq!(
        failure,
        AuditFailure::LateRecovery {
            elapsed: TimeDelta::hours(72) + TimeDelta::seconds(1)
        }
    );
    assert!(log.submit(recovery, t(73)).is_ok());
}

#[test]
fn fork_needs_strictly_higher_priority() {
    let (k1, k2) = (keypair(Curve::K256, 1), keypair(Curve::K256, 2));
    let mut log = Log::create(&[&k1, &k2], &k2);
    log.submit(log.update(0, |_| {}, &k2), t(1)).unwrap();
    let same_key = UnsignedOp::Operation(atproto_op(&[&k2], Some(&log.cid(0))))
        .sign(&k2)
        .unwrap();
    assert_eq!(
        rejected(log.submit(same_key, t(2))),
        AuditFailure::InsufficientKeyPriority
    );

    let recovery = UnsignedOp::Operation(atproto_op(&[&k1, &k2], Some(&log.cid(0))))
        .sign(&k1)
        .unwrap();
    log.submit(recovery, t(2)).unwrap();
    let again = UnsignedOp::Operation(atproto_op(&[&k1], Some(&log.cid(0))))
        .sign(&k1)
        .unwrap();
    assert_eq!(
        rejected(log.submit(again, t(3))),
        AuditFailure::InsufficientKeyPriority
    );
    let outsider = UnsignedOp::Operation(atproto_op(&[&k1], Some(&log.cid(0))))
        .sign(&keypair(Curve::K256, 7))
        .unwrap();
    assert_eq!(
        rejected(log.submit(outsider, t(3))),
        AuditFailure::BadSignature(SignatureError::NoKeys)
    );
}

#[test]
fn tombstone_can_be_recovered() {
    let (k1, k2) = (keypair(Curve::K256, 1), keypair(Curve::K256, 2));
    let mut log = Log::create(&[&k1, &k2], &k2);
    log.submit(UnsignedOp::tombstone(&log.cid(0)).sign(&k2).unwrap(), t(1))
        .unwrap();
    let recovery = UnsignedOp::Operation(atproto_op(&[&k1], Some(&log.cid(0))))
        .sign(&k1)
        .unwrap();
    let accepted = log.submit(recovery, t(2)).unwrap();
    assert_eq!(accepted.nullified, vec![log.cid(1)]);
    assert!(matches!(
        validate_audit_log(&log.did, &log.entries).unwrap().state,
        PlcState::Active(_)
    ));
}

#[test]
fn ordering_and_chain_errors() {
    let k1 = keypair(Curve::K256, 1);
    let mut log = Log::create(&[&k1], &k1);
    let same_time = log.update(0, |_| {}, &k1);
    assert!(matches!(
        rejected(log.submit(same_time, t(0))),
        AuditFailure::TimestampOrder { .. }
    ));

    let stranger = UnsignedOp::Operation(atproto_op(&[&k1], None))
        .sign(&keypair(Curve::K256, 5))
        .unwrap();
    let unknown_prev = UnsignedOp::Operation(atproto_op(&[&k1], Some(&stranger.cid())))
        .sign(&k1)
        .unwrap();
    assert_eq!(
        rejected(log.submit(unknown_prev, t(1))),
        AuditFailure::BrokenPrev {
            prev: stranger.cid()
        }
    );
    let second_genesis = UnsignedOp::Operation(atproto_op(&[&k1, &keypair(Curve::P256, 5)], None))
        .sign(&k1)
        .unwrap();
    assert_eq!(
        rejected(log.submit(second_genesis, t(1))),
        AuditFailure::UnexpectedGenesis
    );

    let genesis = log.entries[0].operation.clone();
    let other: Did = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa".parse().unwrap();
    let failure = rejected(validate_new_op(&other, &[], &genesis, t(0)));
    assert_eq!(
        failure,
        AuditFailure::GenesisDidMismatch {
            derived: log.did.clone()
        }
    );
    let update = log.update(0, |_| {}, &k1);
    assert_eq!(
        rejected(validate_new_op(&log.did, &[], &update, t(1))),
        AuditFailure::MissingGenesis
    );

    assert_eq!(
        validate_audit_log(&log.did, &[]).unwrap_err().failure,
        AuditFailure::EmptyLog
    );
    let mut wrong_cid = log.entries.clone();
    wrong_cid[0].cid = stranger.cid();
    assert!(matches!(
        validate_audit_log(&log.did, &wrong_cid)
            .unwrap_err()
            .failure,
        AuditFailure::CidMismatch { .. }
    ));
    let mut wrong_did = log.entries.clone();
    wrong_did[0].did = other;
    assert!(matches!(
        validate_audit_log(&log.did, &wrong_did)
            .unwrap_err()
            .failure,
        AuditFailure::DidMismatch { .. }
    ));
    let mut broken_log = log.entries.clone();
    broken_log[0].operation.sig = format!("{}=", broken_log[0].operation.sig);
    broken_log[0].cid = broken_log[0].operation.cid();
    let err = validate_new_op(&log.did, &broken_log, &log.update(0, |_| {}, &k1), t(1));
    assert!(matches!(err, Err(NewOpError::InvalidLog(_))));
}

#[test]
fn policy_for_new_ops_only() {
    use crate::plc::policy::PolicyError;
    let k1 = keypair(Curve::K256, 1);
    let dup = UnsignedOp::Operation(atproto_op(&[&k1, &k1], None))
        .sign(&k1)
        .unwrap();
    let did = dup.did().unwrap();
    assert!(matches!(
        validate_new_op(&did, &[], &dup, t(0)),
        Err(NewOpError::Policy(PolicyError::DuplicateRotationKey { .. }))
    ));
    let mut history = Log {
        did,
        entries: Vec::new(),
    };
    history.push(dup, t(0));
    history.push(history.update(0, |op| op.rotation_keys.clear(), &k1), t(1));
    assert!(
        validate_audit_log(&history.did, &history.entries).is_ok(),
        "valid history"
    );

    let refused = |edit: fn(&mut PlcOp)| {
        let mut op = atproto_op(&[&k1], None);
        edit(&mut op);
        let signed = UnsignedOp::Operation(op).sign(&k1).unwrap();
        match validate_new_op(&signed.did().unwrap(), &[], &signed, t(0)) {
            Err(NewOpError::Policy(p)) => p,
            other => panic!("expected a policy refusal, got {other:?}"),
        }
    };
    assert_eq!(
        refused(|op| op.rotation_keys.clear()),
        PolicyError::NoRotationKeys
    );
    let six: fn(&mut PlcOp) = |op| {
        op.rotation_keys = (1..=6).map(|i| keypair(Curve::K256, i).did_key()).collect();
    };
    assert_eq!(refused(six), PolicyError::TooManyRotationKeys { count: 6 });
    let eleven: fn(&mut PlcOp) = |op| {
        for i in 0..11 {
            op.verification_methods
                .insert(format!("k{i}"), keypair(Curve::P256, 1).did_key());
        }
    };
    assert!(matches!(
        refused(eleven),
        PolicyError::TooManyVerificationMethods { .. }
    ));
    let hash: fn(&mut PlcOp) = |op| {
        op.verification_methods
            .insert("#atproto".into(), keypair(Curve::P256, 1).did_key());
    };
    assert!(matches!(refused(hash), PolicyError::InvalidName { .. }));
    let bad_vm: fn(&mut PlcOp) = |op| {
        op.verification_methods
            .insert("x".into(), "did:web:nope".into());
    };
    assert!(matches!(
        refused(bad_vm),
        PolicyError::InvalidVerificationMethod { .. }
    ));
    let dup_aka: fn(&mut PlcOp) = |op| op.also_known_as.push("at://alice.test".into());
    assert!(matches!(
        refused(dup_aka),
        PolicyError::DuplicateAlsoKnownAs { .. }
    ));
    let bad_key: fn(&mut PlcOp) = |op| op.rotation_keys.push("did:key:zNope".into());
    assert!(matches!(
        refused(bad_key),
        PolicyError::InvalidRotationKey { .. }
    ));
    let huge: fn(&mut PlcOp) = |op| {
        op.also_known_as = (0..10)
            .map(|i| format!("at://{i}{}", "a".repeat(252)))
            .collect()
    };
    assert!(matches!(refused(huge), PolicyError::AlsoKnownAsTooLong));
}

#[test]
fn legacy_create_genesis() {
    let (signing, recovery) = (keypair(Curve::K256, 1), keypair(Curve::P256, 2));
    let create = UnsignedOp::LegacyCreate(LegacyCreate {
        signing_key: signing.did_key(),
        recovery_key: recovery.did_key(),
        handle: "old.test".into(),
        service: "https://pds.test".into(),
    })
    .sign(&signing)
    .unwrap();
    assert!(matches!(
        validate_new_op(&create.did().unwrap(), &[], &create, t(0)),
        Err(NewOpError::Policy(
            crate::plc::policy::PolicyError::LegacyCreate
        ))
    ));
    let mut log = Log {
        did: create.did().unwrap(),
        entries: Vec::new(),
    };
    log.push(create, t(0));
    let data = log.data();
    assert_eq!(
        data.rotation_keys,
        vec![recovery.did_key(), signing.did_key()]
    );
    assert_eq!(data.also_known_as, vec!["at://old.test"]);
    let update = log.update(
        0,
        |op| op.set_handle(&"new.test".parse().unwrap()),
        &recovery,
    );
    log.submit(update, t(1)).unwrap();
    assert_eq!(log.data().also_known_as, vec!["at://new.test"]);
}

#[test]
fn log_entry_json() {
    let k1 = keypair(Curve::K256, 1);
    let log = Log::create(&[&k1], &k1);
    let json = serde_json::to_value(&log.entries[0]).unwrap();
    assert_eq!(json["createdAt"], "2025-01-01T00:00:00.000Z");
    assert_eq!(json["cid"], log.cid(0).to_string());
    assert_eq!(json["nullified"], false);
    let back: LogEntry = serde_json::from_value(json).unwrap();
    assert_eq!(back, log.entries[0]);
}
