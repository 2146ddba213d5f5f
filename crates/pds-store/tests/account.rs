//! Accounts, sessions, invite codes, email tokens and preferences on real SQLite.

mod fixture;

use atp_repo::format_genesis;
use chrono::Duration;
use fixture::*;
use pds_store::{
    AppPassword, EmailTokenPurpose, EventKind, NewAccount, NewInviteCode, Preference, RefreshToken,
    RepoCommit, StoreError,
};

fn new_account(acct: &TestAccount, email: Option<&str>, invite: Option<&str>) -> NewAccount {
    NewAccount {
        did: acct.did.clone(),
        handle: acct.handle.clone(),
        email: email.map(str::to_owned),
        password_hash: Some("hash".to_owned()),
        invite_code: invite.map(str::to_owned),
        deactivated: false,
    }
}

fn genesis(acct: &TestAccount) -> RepoCommit {
    RepoCommit::new(format_genesis(&acct.did, Vec::new(), &acct.key, &next_tid()).unwrap())
}

#[tokio::test]
async fn lookups_are_case_insensitive_and_unique() {
    let t = open_store();
    let alice = account(1);
    create(&t.store, &alice, Some("Alice@Example.com")).await;
    let by_handle = t
        .store
        .get_account_by_handle(&"USER1.Test".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_handle.did, alice.did);
    assert_eq!(by_handle.handle.as_str(), "user1.test");
    let by_email = t
        .store
        .get_account_by_email("alice@EXAMPLE.COM")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_email.email.as_deref(), Some("Alice@Example.com"));
    assert!(by_email.is_active());
    assert_eq!(by_email.created_at, at(0));

    let mut bob = account(2);
    bob.handle = "User1.TEST".parse().unwrap();
    let before = dump(&t.store);
    let err = t
        .store
        .create_account(new_account(&bob, None, None), genesis(&bob), vec![], at(1))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        StoreError::HandleTaken {
            handle: "User1.TEST".to_owned()
        }
    );
    bob.handle = "bob.test".parse().unwrap();
    assert_fails!(
        t.store.create_account(
            new_account(&bob, Some("ALICE@example.com"), None),
            genesis(&bob),
            vec![],
            at(1)
        ),
        StoreError::EmailTaken { .. }
    );
    assert_eq!(dump(&t.store), before);
    create(&t.store, &bob, None).await;

    // Updates.
    assert_fails!(
        t.store
            .update_handle(&bob.did, &"USER1.test".parse().unwrap(), vec![], at(2)),
        StoreError::HandleTaken { .. }
    );
    t.store
        .update_handle(&alice.did, &"alice.test".parse().unwrap(), vec![], at(2))
        .await
        .unwrap();
    t.store
        .update_handle(&alice.did, &"Alice.test".parse().unwrap(), vec![], at(2))
        .await
        .unwrap();
    t.store.confirm_email(&alice.did, at(3)).await.unwrap();
    assert_eq!(
        t.store
            .get_account(&alice.did)
            .await
            .unwrap()
            .unwrap()
            .email_confirmed_at,
        Some(at(3))
    );
    t.store
        .update_email(&alice.did, "new@example.com")
        .await
        .unwrap();
    let a = t.store.get_account(&alice.did).await.unwrap().unwrap();
    assert_eq!(
        (a.email.as_deref(), a.email_confirmed_at),
        (Some("new@example.com"), None)
    );
    assert!(matches!(
        t.store
            .update_email(&bob.did, "NEW@example.com")
            .await
            .unwrap_err(),
        StoreError::EmailTaken { .. }
    ));
    let nobody = account(3);
    assert_eq!(
        t.store
            .update_handle(&nobody.did, &"x.test".parse().unwrap(), vec![], at(2))
            .await
            .unwrap_err(),
        StoreError::AccountNotFound {
            did: nobody.did.clone()
        }
    );

    // Status.
    t.store
        .deactivate_account(&alice.did, at(4), Some(at(100)), vec![])
        .await
        .unwrap();
    let a = t.store.get_account(&alice.did).await.unwrap().unwrap();
    assert_eq!(
        (a.deactivated_at, a.delete_after, a.is_active()),
        (Some(at(4)), Some(at(100)), false)
    );
    t.store
        .activate_account(&alice.did, vec![], at(5))
        .await
        .unwrap();
    t.store
        .set_account_takedown(&alice.did, Some("mod-1".to_owned()))
        .await
        .unwrap();
    let a = t.store.get_account(&alice.did).await.unwrap().unwrap();
    assert_eq!(
        (a.deactivated_at, a.takedown_ref.as_deref(), a.is_active()),
        (None, Some("mod-1"), false)
    );
}

#[tokio::test]
async fn invite_codes_are_used_atomically() {
    let t = open_store();
    t.store
        .create_invite_codes(
            vec![NewInviteCode {
                code: "code-1".to_owned(),
                available_uses: 1,
                for_account: "admin".to_owned(),
                created_by: "admin".to_owned(),
            }],
            at(0),
        )
        .await
        .unwrap();
    let alice = account(1);
    t.store
        .create_account(
            new_account(&alice, None, Some("code-1")),
            genesis(&alice),
            vec![],
            at(1),
        )
        .await
        .unwrap();
    let code = t.store.get_invite_code("code-1").await.unwrap().unwrap();
    assert_eq!(code.uses.len(), 1);
    assert_eq!(code.uses[0].used_by, alice.did.as_str());
    assert!(!code.is_available());

    // Used up: the second account is not created at all.
    let bob = account(2);
    let before = dump(&t.store);
    let err = t
        .store
        .create_account(
            new_account(&bob, None, Some("code-1")),
            genesis(&bob),
            vec![event(EventKind::Account, "x")],
            at(2),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        StoreError::InviteCodeUnavailable {
            code: "code-1".to_owned()
        }
    );
    assert_fails!(
        t.store.create_account(
            new_account(&bob, None, Some("nope")),
            genesis(&bob),
            vec![],
            at(2)
        ),
        StoreError::InviteCodeUnavailable { .. }
    );
    assert_eq!(dump(&t.store), before);

    t.store
        .create_invite_codes(
            vec![NewInviteCode {
                code: "code-2".to_owned(),
                available_uses: 5,
                for_account: alice.did.to_string(),
                created_by: alice.did.to_string(),
            }],
            at(3),
        )
        .await
        .unwrap();
    let mine = t.store.list_invite_codes(alice.did.as_str()).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert!(mine[0].is_available());
    t.store
        .disable_invite_codes(vec![], vec![alice.did.to_string()])
        .await
        .unwrap();
    assert!(
        !t.store
            .get_invite_code("code-2")
            .await
            .unwrap()
            .unwrap()
            .is_available()
    );
    assert_fails!(
        t.store.create_account(
            new_account(&bob, None, Some("code-2")),
            genesis(&bob),
            vec![],
            at(4)
        ),
        StoreError::InviteCodeUnavailable { .. }
    );
    t.store
        .set_invites_disabled(&alice.did, true)
        .await
        .unwrap();
    assert!(
        t.store
            .get_account(&alice.did)
            .await
            .unwrap()
            .unwrap()
            .invites_disabled
    );
}

#[tokio::test]
async fn refresh_tokens_rotate_with_grace() {
    let t = open_store();
    let alice = account(1);
    create(&t.store, &alice, None).await;
    let day = Duration::days(1);
    let token = |id: &str, expires| RefreshToken {
        id: id.to_owned(),
        did: alice.did.clone(),
        app_password_name: None,
        expires_at: expires,
        next_id: None,
    };
    t.store
        .create_refresh_token(token("r1", at(0) + day * 90))
        .await
        .unwrap();

    let first = t
        .store
        .rotate_refresh_token("r1", "r2".to_owned(), at(10) + day * 90, at(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((first.next_id.as_str(), first.reused), ("r2", false));
    assert_eq!(first.next_expires_at, at(10) + day * 90);
    let old = t.store.get_refresh_token("r1").await.unwrap().unwrap();
    assert_eq!(old.expires_at, at(10) + Duration::hours(2));
    assert_eq!(old.next_id.as_deref(), Some("r2"));

    // Within the grace period: the same next token.
    let again = t
        .store
        .rotate_refresh_token("r1", "r3".to_owned(), at(20) + day * 90, at(20))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.next_id.as_str(), again.reused), ("r2", true));
    assert_eq!(again.next_expires_at, first.next_expires_at);
    assert!(t.store.get_refresh_token("r3").await.unwrap().is_none());

    // After the grace period: refused.
    let late = at(10) + Duration::hours(2) + Duration::seconds(1);
    assert!(
        t.store
            .rotate_refresh_token("r1", "r4".to_owned(), late + day, late)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        t.store.get_refresh_token("r1").await.unwrap().is_none(),
        "expired tokens are tidied"
    );

    // Revoking the next token also ends its predecessor's grace.
    let second = t
        .store
        .rotate_refresh_token("r2", "r5".to_owned(), at(30) + day, at(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.next_id, "r5");
    assert!(t.store.delete_refresh_token("r5").await.unwrap());
    assert!(
        t.store
            .rotate_refresh_token("r2", "r6".to_owned(), at(31) + day, at(31))
            .await
            .unwrap()
            .is_none()
    );
    assert!(t.store.get_refresh_token("r6").await.unwrap().is_none());
    assert!(
        t.store
            .rotate_refresh_token("missing", "r7".to_owned(), at(31) + day, at(31))
            .await
            .unwrap()
            .is_none()
    );

    // A password change revokes all sessions.
    t.store
        .create_refresh_token(token("r8", at(40) + day))
        .await
        .unwrap();
    t.store
        .set_password(&alice.did, "new-hash".to_owned())
        .await
        .unwrap();
    assert!(t.store.get_refresh_token("r8").await.unwrap().is_none());
    assert_eq!(
        t.store
            .get_account(&alice.did)
            .await
            .unwrap()
            .unwrap()
            .password_hash
            .as_deref(),
        Some("new-hash")
    );
}

#[tokio::test]
async fn app_passwords() {
    let t = open_store();
    let alice = account(1);
    create(&t.store, &alice, None).await;
    let pw = |name: &str| AppPassword {
        name: name.to_owned(),
        password_hash: format!("hash-{name}"),
        privileged: name == "chat",
        created_at: at(1),
    };
    t.store
        .create_app_password(&alice.did, pw("phone"))
        .await
        .unwrap();
    t.store
        .create_app_password(&alice.did, pw("chat"))
        .await
        .unwrap();
    assert_eq!(
        t.store
            .create_app_password(&alice.did, pw("phone"))
            .await
            .unwrap_err(),
        StoreError::AppPasswordExists {
            name: "phone".to_owned()
        }
    );
    let list = t.store.list_app_passwords(&alice.did).await.unwrap();
    assert_eq!(
        list.iter()
            .map(|p| (p.name.as_str(), p.privileged))
            .collect::<Vec<_>>(),
        [("chat", true), ("phone", false)]
    );
    t.store
        .create_refresh_token(RefreshToken {
            id: "via-phone".to_owned(),
            did: alice.did.clone(),
            app_password_name: Some("phone".to_owned()),
            expires_at: at(1000),
            next_id: None,
        })
        .await
        .unwrap();
    assert!(
        t.store
            .delete_app_password(&alice.did, "phone")
            .await
            .unwrap()
    );
    assert!(
        !t.store
            .delete_app_password(&alice.did, "phone")
            .await
            .unwrap()
    );
    assert!(
        t.store
            .get_refresh_token("via-phone")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn the_email_sign_in_factor_follows_the_confirmed_address() {
    let t = open_store();
    let alice = account(1);
    create(&t.store, &alice, Some("a@example.com")).await;
    let factor = |on| {
        let store = &t.store;
        let did = alice.did.clone();
        async move {
            let a = store.get_account(&did).await.unwrap().unwrap();
            assert_eq!(a.email_auth_factor_at.is_some(), on);
            a.email_auth_factor_at
        }
    };
    let set = |email: &'static str, on: Option<i64>| {
        let store = &t.store;
        let did = alice.did.clone();
        async move {
            store
                .set_email_auth_factor(&did, email, on.map(at))
                .await
                .unwrap()
        }
    };
    // Unconfirmed: refused, nothing written.
    assert!(!set("a@example.com", Some(1)).await);
    factor(false).await;
    t.store.confirm_email(&alice.did, at(2)).await.unwrap();
    // Another address: refused; the account's (any case): on, and the first time is kept.
    assert!(!set("b@example.com", Some(3)).await);
    factor(false).await;
    assert!(set("A@EXAMPLE.com", Some(3)).await);
    assert!(set("a@example.com", Some(4)).await);
    assert_eq!(factor(true).await, Some(at(3)));
    // Off needs the address too (not its confirmation).
    assert!(!set("b@example.com", None).await);
    factor(true).await;
    assert!(set("a@example.com", None).await);
    factor(false).await;
    // A new address clears confirmation and the factor together.
    assert!(set("a@example.com", Some(5)).await);
    t.store
        .update_email(&alice.did, "c@example.com")
        .await
        .unwrap();
    let a = t.store.get_account(&alice.did).await.unwrap().unwrap();
    assert_eq!((a.email_confirmed_at, a.email_auth_factor_at), (None, None));
    // Listed accounts carry it as well (its column comes before the root's).
    let listed = t.store.list_repos(None, 10).await.unwrap();
    assert_eq!(listed[0].account, a);
}

#[tokio::test]
async fn email_tokens_and_preferences() {
    let t = open_store();
    let alice = account(1);
    create(&t.store, &alice, Some("a@example.com")).await;
    let purpose = EmailTokenPurpose::ResetPassword;
    t.store
        .set_email_token(&alice.did, purpose, "AAAAA-11111".to_owned(), at(1))
        .await
        .unwrap();
    t.store
        .set_email_token(&alice.did, purpose, "BBBBB-22222".to_owned(), at(2))
        .await
        .unwrap();
    assert_eq!(
        t.store
            .check_email_token(&alice.did, purpose, "AAAAA-11111")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        t.store
            .check_email_token(&alice.did, purpose, "BBBBB-22222")
            .await
            .unwrap(),
        Some(at(2))
    );
    assert_eq!(
        t.store
            .check_email_token(&alice.did, EmailTokenPurpose::ConfirmEmail, "BBBBB-22222")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        t.store
            .find_email_token(purpose, "BBBBB-22222")
            .await
            .unwrap(),
        Some((alice.did.clone(), at(2)))
    );
    t.store
        .set_password(&alice.did, "h2".to_owned())
        .await
        .unwrap();
    assert_eq!(
        t.store
            .find_email_token(purpose, "BBBBB-22222")
            .await
            .unwrap(),
        None
    );
    t.store
        .set_email_token(
            &alice.did,
            EmailTokenPurpose::ConfirmEmail,
            "C".to_owned(),
            at(3),
        )
        .await
        .unwrap();
    assert!(
        t.store
            .delete_email_token(&alice.did, EmailTokenPurpose::ConfirmEmail)
            .await
            .unwrap()
    );

    let pref = |name: &str, n: i64| Preference {
        name: name.to_owned(),
        value: serde_json::json!({ "$type": name, "n": n }),
    };
    t.store
        .put_preferences(
            &alice.did,
            "app.bsky",
            vec![
                pref("app.bsky.actor.defs#a", 1),
                pref("app.bsky.actor.defs#a", 2),
            ],
        )
        .await
        .unwrap();
    t.store
        .put_preferences(&alice.did, "com.example", vec![pref("com.example.x", 3)])
        .await
        .unwrap();
    t.store
        .put_preferences(
            &alice.did,
            "app.bsky",
            vec![
                pref("app.bsky.actor.defs#b", 4),
                pref("app.bsky.actor.defs#a", 5),
            ],
        )
        .await
        .unwrap();
    let got = t
        .store
        .get_preferences(&alice.did, "app.bsky")
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![
            pref("app.bsky.actor.defs#b", 4),
            pref("app.bsky.actor.defs#a", 5)
        ]
    );
    assert_eq!(
        t.store
            .get_preferences(&alice.did, "com.example")
            .await
            .unwrap(),
        vec![pref("com.example.x", 3)]
    );
    assert_fails!(
        t.store
            .put_preferences(&alice.did, "app.bsky", vec![pref("com.example.y", 1)]),
        StoreError::PreferenceOutsideNamespace { .. }
    );
}

#[tokio::test]
async fn delete_account_removes_everything_it_owns() {
    let t = open_store();
    let alice = account(1);
    let bob = account(2);
    create(&t.store, &alice, Some("a@example.com")).await;
    create(&t.store, &bob, None).await;
    let data = b"img";
    let r = blob_ref(data);
    t.store
        .register_upload(
            &alice.did,
            pds_store::NewUpload {
                cid: r.cid,
                mime_type: r.mime_type.clone(),
                size: r.size,
                temp_key: "k".to_owned(),
            },
            at(1),
        )
        .await
        .unwrap();
    write(
        &t.store,
        &alice,
        &[create_write(
            "app.bsky.feed.post",
            "3aaaaaaaaaa22",
            post("x", Some(&r)),
        )],
    )
    .await
    .unwrap();
    t.store
        .set_email_token(
            &alice.did,
            EmailTokenPurpose::DeleteAccount,
            "T".to_owned(),
            at(1),
        )
        .await
        .unwrap();
    let bob_account = t.store.get_account(&bob.did).await.unwrap();
    let bob_root = t.store.repo_root(&bob.did).await.unwrap();

    let files = t
        .store
        .delete_account(
            &alice.did,
            Some(event(EventKind::Account, "deleted")),
            at(5),
        )
        .await
        .unwrap();
    assert_eq!(files, vec![r.cid]);
    assert!(t.store.get_account(&alice.did).await.unwrap().is_none());
    assert!(t.store.repo_root(&alice.did).await.unwrap().is_none());
    let conn = raw(&t.store);
    for table in [
        "repo_block",
        "record",
        "blob",
        "record_blob",
        "email_token",
        "refresh_token",
        "account_pref",
    ] {
        let n: i64 = conn
            .query_row(
                &format!("SELECT COUNT(*) FROM {table} WHERE did = ?1"),
                [alice.did.as_str()],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 0, "{table} still has rows of the deleted account");
    }
    assert_eq!(t.store.get_account(&bob.did).await.unwrap(), bob_account);
    assert_eq!(t.store.repo_root(&bob.did).await.unwrap(), bob_root);
    check_consistent(&t.store, &bob).await;
    let last = t.store.events_after(0, 100).await.unwrap().pop().unwrap();
    assert_eq!(
        (last.kind, last.did),
        (EventKind::Account, alice.did.clone())
    );
}

/// The events appended after `after`, as `(seq, did, kind, body, time)`.
async fn events_since(
    store: &pds_store::Store,
    after: i64,
) -> Vec<(
    i64,
    String,
    EventKind,
    Vec<u8>,
    chrono::DateTime<chrono::Utc>,
)> {
    store
        .events_after(after, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.seq, e.did.to_string(), e.kind, e.body, e.time))
        .collect()
}

#[tokio::test]
async fn status_and_handle_changes_write_their_events_in_the_same_transaction() {
    let t = open_store();
    let alice = account(1);
    let bob = account(2);
    create(&t.store, &alice, None).await;
    create(&t.store, &bob, None).await;
    let did = alice.did.to_string();

    // Handle change + `#identity`.
    let last = t.store.last_seq().await.unwrap();
    let seqs = t
        .store
        .update_handle(
            &alice.did,
            &"alice.test".parse().unwrap(),
            vec![event(EventKind::Identity, "handle")],
            at(10),
        )
        .await
        .unwrap();
    assert_eq!(seqs, vec![last + 1]);
    let a = t.store.get_account(&alice.did).await.unwrap().unwrap();
    assert_eq!(a.handle.as_str(), "alice.test");
    assert_eq!(
        events_since(&t.store, last).await,
        vec![(
            last + 1,
            did.clone(),
            EventKind::Identity,
            b"handle".to_vec(),
            at(10)
        )]
    );

    // Deactivation + `#account`.
    let last = t.store.last_seq().await.unwrap();
    let seqs = t
        .store
        .deactivate_account(
            &alice.did,
            at(11),
            Some(at(99)),
            vec![event(EventKind::Account, "deactivated")],
        )
        .await
        .unwrap();
    assert_eq!(seqs, vec![last + 1]);
    let a = t.store.get_account(&alice.did).await.unwrap().unwrap();
    assert_eq!(
        (a.deactivated_at, a.delete_after),
        (Some(at(11)), Some(at(99)))
    );
    assert_eq!(
        events_since(&t.store, last).await,
        vec![(
            last + 1,
            did.clone(),
            EventKind::Account,
            b"deactivated".to_vec(),
            at(11)
        )]
    );

    // Reactivation + `#identity`, `#account`, `#sync`, in that order.
    let last = t.store.last_seq().await.unwrap();
    let seqs = t
        .store
        .activate_account(
            &alice.did,
            vec![
                event(EventKind::Identity, "i"),
                event(EventKind::Account, "a"),
                event(EventKind::Sync, "s"),
            ],
            at(12),
        )
        .await
        .unwrap();
    assert_eq!(seqs, vec![last + 1, last + 2, last + 3]);
    assert!(
        t.store
            .get_account(&alice.did)
            .await
            .unwrap()
            .unwrap()
            .is_active()
    );
    assert_eq!(
        events_since(&t.store, last).await,
        vec![
            (
                last + 1,
                did.clone(),
                EventKind::Identity,
                b"i".to_vec(),
                at(12)
            ),
            (
                last + 2,
                did.clone(),
                EventKind::Account,
                b"a".to_vec(),
                at(12)
            ),
            (
                last + 3,
                did.clone(),
                EventKind::Sync,
                b"s".to_vec(),
                at(12)
            ),
        ]
    );

    // A change that fails writes no event.
    let before = dump(&t.store);
    assert_fails!(
        t.store.update_handle(
            &bob.did,
            &"ALICE.test".parse().unwrap(),
            vec![event(EventKind::Identity, "taken")],
            at(13)
        ),
        StoreError::HandleTaken { .. }
    );
    let nobody = account(3);
    assert_fails!(
        t.store.update_handle(
            &nobody.did,
            &"nobody.test".parse().unwrap(),
            vec![event(EventKind::Identity, "nobody")],
            at(13)
        ),
        StoreError::AccountNotFound { .. }
    );
    assert_fails!(
        t.store.deactivate_account(
            &nobody.did,
            at(13),
            None,
            vec![event(EventKind::Account, "nobody")]
        ),
        StoreError::AccountNotFound { .. }
    );
    assert_fails!(
        t.store.activate_account(
            &nobody.did,
            vec![
                event(EventKind::Identity, "n"),
                event(EventKind::Account, "n"),
            ],
            at(13)
        ),
        StoreError::AccountNotFound { .. }
    );
    assert_eq!(dump(&t.store), before);
}

#[tokio::test]
async fn a_failing_event_undoes_the_status_or_handle_change() {
    let t = open_store();
    let alice = account(1);
    create(&t.store, &alice, None).await;
    t.store
        .deactivate_account(&alice.did, at(1), None, vec![])
        .await
        .unwrap();
    // The next two events get i64::MAX - 1 and i64::MAX; a third cannot be numbered.
    t.store.set_seq_floor(i64::MAX - 1).await.unwrap();
    let before = dump(&t.store);
    assert_fails!(
        t.store.activate_account(
            &alice.did,
            vec![
                event(EventKind::Identity, "i"),
                event(EventKind::Account, "a"),
                event(EventKind::Sync, "s"),
            ],
            at(2)
        ),
        StoreError::Corrupt { .. }
    );
    assert_eq!(dump(&t.store), before, "activation kept without its events");

    t.store
        .activate_account(
            &alice.did,
            vec![
                event(EventKind::Identity, "i"),
                event(EventKind::Account, "a"),
            ],
            at(3),
        )
        .await
        .unwrap();
    assert_eq!(t.store.last_seq().await.unwrap(), i64::MAX);
    let before = dump(&t.store);
    assert_fails!(
        t.store.update_handle(
            &alice.did,
            &"alice.test".parse().unwrap(),
            vec![event(EventKind::Identity, "h")],
            at(4)
        ),
        StoreError::Corrupt { .. }
    );
    assert_fails!(
        t.store.deactivate_account(
            &alice.did,
            at(4),
            None,
            vec![event(EventKind::Account, "d")]
        ),
        StoreError::Corrupt { .. }
    );
    assert_eq!(dump(&t.store), before, "change kept without its event");
    let a = t.store.get_account(&alice.did).await.unwrap().unwrap();
    assert_eq!((a.handle.as_str(), a.is_active()), ("user1.test", true));
}

#[tokio::test]
async fn list_repos_pages_by_did_with_status_and_root() {
    let t = open_store();
    let mut accts: Vec<TestAccount> = (1..=5).map(account).collect();
    for a in &accts {
        create(&t.store, a, None).await;
    }
    accts.sort_by(|a, b| a.did.as_str().cmp(b.did.as_str()));
    t.store
        .deactivate_account(&accts[1].did, at(5), None, vec![])
        .await
        .unwrap();
    let first = t.store.list_repos(None, 2).await.unwrap();
    let dids: Vec<_> = first.iter().map(|r| r.account.did.clone()).collect();
    assert_eq!(dids, vec![accts[0].did.clone(), accts[1].did.clone()]);
    assert!(first[0].account.is_active());
    assert!(first[1].account.deactivated_at.is_some());
    let root = t.store.repo_root(&accts[0].did).await.unwrap().unwrap();
    assert_eq!(first[0].root, root);
    let rest = t.store.list_repos(Some(&dids[1]), 10).await.unwrap();
    let rest: Vec<_> = rest.iter().map(|r| r.account.did.clone()).collect();
    assert_eq!(
        rest,
        accts[2..].iter().map(|a| a.did.clone()).collect::<Vec<_>>()
    );
    let last = accts[4].did.clone();
    assert!(
        t.store
            .list_repos(Some(&last), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn pruning_keeps_the_newest_event() {
    let t = open_store();
    let alice = account(1);
    create(&t.store, &alice, None).await;
    for i in 0..3 {
        t.store
            .append_event(&alice.did, event(EventKind::Identity, "x"), at(10 + i))
            .await
            .unwrap();
    }
    let last = t.store.last_seq().await.unwrap();
    // Only events strictly before the cut-off go.
    let pruned = t.store.prune_events_keeping_last(at(11)).await.unwrap();
    assert!(pruned >= 1);
    assert!(t.store.first_seq().await.unwrap().unwrap() < last);
    // Everything is old: all but the newest go.
    t.store.prune_events_keeping_last(at(1000)).await.unwrap();
    assert_eq!(t.store.first_seq().await.unwrap(), Some(last));
    assert_eq!(
        t.store.prune_events_keeping_last(at(1000)).await.unwrap(),
        0
    );
}
