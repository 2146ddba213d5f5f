//! Email tokens (constant-time reads, compare-and-delete, expiry sweeps, the CLI's read-only
//! lookup) and scheduled account deletions, on real SQLite.

mod fixture;

use fixture::*;
use pds_store::{EmailTokenPurpose, EventKind, read_email_token};

#[tokio::test]
async fn tokens_are_taken_once_and_swept_when_old() {
    let t = open_store();
    let alice = account(1);
    create(&t.store, &alice, Some("alice@example.com")).await;
    let purpose = EmailTokenPurpose::DeleteAccount;
    assert_eq!(
        t.store.get_email_token(&alice.did, purpose).await.unwrap(),
        None
    );
    t.store
        .set_email_token(&alice.did, purpose, "AAAAA-11111".into(), at(10))
        .await
        .unwrap();
    let got = t
        .store
        .get_email_token(&alice.did, purpose)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.token.as_str(), got.requested_at),
        ("AAAAA-11111", at(10))
    );
    assert!(
        !format!("{got:?}").contains("AAAAA"),
        "Debug must not print the token"
    );
    // A stale value does not delete the live token.
    assert!(
        !t.store
            .take_email_token(&alice.did, purpose, "ZZZZZ-99999")
            .await
            .unwrap()
    );
    assert!(
        t.store
            .take_email_token(&alice.did, purpose, "AAAAA-11111")
            .await
            .unwrap()
    );
    assert!(
        !t.store
            .take_email_token(&alice.did, purpose, "AAAAA-11111")
            .await
            .unwrap()
    );
    assert_eq!(
        t.store.get_email_token(&alice.did, purpose).await.unwrap(),
        None
    );

    for (i, p) in [
        EmailTokenPurpose::ConfirmEmail,
        EmailTokenPurpose::PlcOperation,
    ]
    .into_iter()
    .enumerate()
    {
        t.store
            .set_email_token(&alice.did, p, format!("BBBBB-{i}"), at(100 * i as i64))
            .await
            .unwrap();
    }
    assert_eq!(t.store.delete_email_tokens_before(at(50)).await.unwrap(), 1);
    assert!(
        t.store
            .get_email_token(&alice.did, EmailTokenPurpose::PlcOperation)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        t.store.delete_all_email_tokens(&alice.did).await.unwrap(),
        1
    );
    assert_eq!(
        t.store.delete_all_email_tokens(&alice.did).await.unwrap(),
        0
    );
}

#[tokio::test]
async fn the_read_only_lookup_finds_accounts_by_did_or_handle() {
    let t = open_store();
    let alice = account(1);
    create(&t.store, &alice, Some("alice@example.com")).await;
    let purpose: EmailTokenPurpose = "plc_operation".parse().unwrap();
    assert!("nope".parse::<EmailTokenPurpose>().is_err());
    let path = t.store.path().to_owned();
    let found = read_email_token(&path, alice.did.as_str(), purpose).unwrap();
    assert_eq!(found, Some((alice.did.clone(), None)));
    t.store
        .set_email_token(&alice.did, purpose, "CCCCC-33333".into(), at(5))
        .await
        .unwrap();
    let upper = alice.handle.as_str().to_ascii_uppercase();
    let (did, token) = read_email_token(&path, &upper, purpose).unwrap().unwrap();
    assert_eq!(did, alice.did);
    assert_eq!(token.unwrap().token, "CCCCC-33333");
    assert_eq!(
        read_email_token(&path, "nobody.test", purpose).unwrap(),
        None
    );
    assert!(read_email_token(&t.dir.path().join("missing.sqlite"), "x", purpose).is_err());
}

#[tokio::test]
async fn due_deletions_are_deactivated_accounts_past_their_deadline() {
    let t = open_store();
    let (a, b, c, d) = (account(1), account(2), account(3), account(4));
    for acct in [&a, &b, &c, &d] {
        create(&t.store, acct, None).await;
    }
    // a: due; b: not yet; c: deactivated without a deadline; d: active.
    t.store
        .deactivate_account(&a.did, at(1), Some(at(10)), vec![])
        .await
        .unwrap();
    t.store
        .deactivate_account(&b.did, at(1), Some(at(1000)), vec![])
        .await
        .unwrap();
    t.store
        .deactivate_account(&c.did, at(1), None, vec![])
        .await
        .unwrap();
    assert_eq!(
        t.store.accounts_due_for_deletion(at(5), 10).await.unwrap(),
        vec![]
    );
    assert_eq!(
        t.store.accounts_due_for_deletion(at(10), 10).await.unwrap(),
        vec![a.did.clone()]
    );
    assert_eq!(
        t.store
            .accounts_due_for_deletion(at(2000), 10)
            .await
            .unwrap(),
        vec![a.did.clone(), b.did.clone()]
    );
    assert_eq!(
        t.store
            .accounts_due_for_deletion(at(2000), 1)
            .await
            .unwrap()
            .len(),
        1
    );
    // Reactivation cancels the schedule.
    t.store
        .activate_account(&a.did, vec![], at(20))
        .await
        .unwrap();
    assert_eq!(
        t.store
            .accounts_due_for_deletion(at(2000), 10)
            .await
            .unwrap(),
        vec![b.did.clone()]
    );
}

#[tokio::test]
async fn a_scheduled_deletion_rechecks_the_schedule_in_its_transaction() {
    let t = open_store();
    let (a, b, c) = (account(1), account(2), account(3));
    for acct in [&a, &b, &c] {
        create(&t.store, acct, None).await;
        t.store
            .deactivate_account(&acct.did, at(1), Some(at(10)), vec![])
            .await
            .unwrap();
    }
    let due = t.store.accounts_due_for_deletion(at(20), 10).await.unwrap();
    assert_eq!(due.len(), 3);
    // After the listing: a is reactivated, b is given a later deadline.
    t.store
        .activate_account(&a.did, vec![], at(15))
        .await
        .unwrap();
    t.store
        .deactivate_account(&b.did, at(16), Some(at(100)), vec![])
        .await
        .unwrap();
    let before = dump(&t.store);
    for acct in [&a, &b] {
        let deleted = t
            .store
            .delete_account_if_due(
                &acct.did,
                Some(event(EventKind::Account, "deleted")),
                at(20),
            )
            .await
            .unwrap();
        assert_eq!(deleted, None, "{} is not due any more", acct.did);
    }
    assert_eq!(dump(&t.store), before, "nothing was written");
    // c is still due: deleted with its event; a second attempt finds nothing.
    let deleted = t
        .store
        .delete_account_if_due(&c.did, Some(event(EventKind::Account, "deleted")), at(20))
        .await
        .unwrap();
    assert_eq!(deleted, Some(vec![]));
    assert!(t.store.get_account(&c.did).await.unwrap().is_none());
    let events = t.store.events_after(0, 100).await.unwrap();
    let c_events: Vec<&[u8]> = events
        .iter()
        .filter(|e| e.did == c.did)
        .map(|e| e.body.as_slice())
        .collect();
    assert_eq!(c_events, vec![b"deleted".as_slice()]);
    let deleted = t
        .store
        .delete_account_if_due(&c.did, None, at(20))
        .await
        .unwrap();
    assert_eq!(deleted, None);
    // b at its new deadline.
    let deleted = t
        .store
        .delete_account_if_due(&b.did, None, at(100))
        .await
        .unwrap();
    assert_eq!(deleted, Some(vec![]));
    assert!(t.store.get_account(&a.did).await.unwrap().is_some());
}
