//! The administrator's store calls on real SQLite: status changes with their events in one
//! transaction, blob takedowns, the server-wide invite code list with its keyset paging, the
//! code an account was invited with, account search, and account deletion dropping the
//! account's earlier events.

mod fixture;

use fixture::*;
use pds_store::{
    AccountStatusChange, EventKind, InviteCursor, InviteSort, NewInviteCode, NewUpload,
    QuarantineMove, StoreError,
};

#[tokio::test]
async fn status_changes_append_events_built_from_the_changed_row() {
    let t = open_store();
    let alice = account(1);
    create(&t.store, &alice, None).await;
    let before = t.store.last_seq().await.unwrap();
    let change = AccountStatusChange {
        takedown: Some(Some("ref-1".to_owned())),
        deactivated: Some(true),
    };
    let changed = t
        .store
        .update_account_status(
            &alice.did,
            change,
            |a| {
                let tag = format!("{:?}/{}", a.takedown_ref, a.deactivated_at.is_some());
                vec![event(EventKind::Account, &tag)]
            },
            at(3),
        )
        .await
        .unwrap();
    assert_eq!(changed.takedown_ref.as_deref(), Some("ref-1"));
    assert_eq!(changed.deactivated_at, Some(at(3)));
    assert_eq!(changed.delete_after, None);
    let events = t.store.events_after(before, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].body, b"Some(\"ref-1\")/true");

    // `None` fields are left alone; lifting the takedown keeps the deactivation.
    let change = AccountStatusChange {
        takedown: Some(None),
        deactivated: None,
    };
    let changed = t
        .store
        .update_account_status(&alice.did, change, |_| vec![], at(4))
        .await
        .unwrap();
    assert_eq!(changed.takedown_ref, None);
    assert_eq!(changed.deactivated_at, Some(at(3)));

    // An unknown account writes nothing, events included.
    let dump_before = dump(&t.store);
    assert_fails!(
        t.store.update_account_status(
            &account(2).did,
            AccountStatusChange::default(),
            |_| vec![event(EventKind::Account, "x")],
            at(5)
        ),
        StoreError::AccountNotFound { .. }
    );
    assert_eq!(dump(&t.store), dump_before);
}

#[tokio::test]
async fn a_takedown_revokes_refresh_tokens() {
    let t = open_store();
    let alice = account(1);
    create(&t.store, &alice, None).await;
    t.store
        .create_refresh_token(pds_store::RefreshToken {
            id: "jti".to_owned(),
            did: alice.did.clone(),
            app_password_name: None,
            expires_at: at(1000),
            next_id: None,
        })
        .await
        .unwrap();
    let change = AccountStatusChange {
        takedown: Some(Some("r".to_owned())),
        deactivated: None,
    };
    t.store
        .update_account_status(&alice.did, change, |_| vec![], at(1))
        .await
        .unwrap();
    assert!(t.store.get_refresh_token("jti").await.unwrap().is_none());
}

#[tokio::test]
async fn blob_takedowns_and_temporary_files() {
    let t = open_store();
    let alice = account(1);
    create(&t.store, &alice, None).await;
    let r = blob_ref(b"img");
    let upload = NewUpload {
        cid: r.cid,
        mime_type: r.mime_type.clone(),
        size: r.size,
        temp_key: "tmp-1".to_owned(),
    };
    t.store
        .register_upload(&alice.did, upload, at(1))
        .await
        .unwrap();
    assert_eq!(
        t.store.blob_temp_keys(&alice.did).await.unwrap(),
        vec!["tmp-1".to_owned()]
    );
    assert!(
        t.store
            .set_blob_takedown(&alice.did, &r.cid, Some("b".to_owned()))
            .await
            .unwrap()
    );
    let meta = t.store.get_blob(&alice.did, &r.cid).await.unwrap().unwrap();
    assert_eq!(meta.takedown_ref.as_deref(), Some("b"));
    assert!(
        t.store
            .set_blob_takedown(&alice.did, &r.cid, None)
            .await
            .unwrap()
    );
    let meta = t.store.get_blob(&alice.did, &r.cid).await.unwrap().unwrap();
    assert_eq!(meta.takedown_ref, None);
    let other = blob_ref(b"other");
    assert!(
        !t.store
            .set_blob_takedown(&alice.did, &other.cid, Some("b".to_owned()))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn quarantine_moves_follow_the_takedown_until_recorded() {
    let t = open_store();
    let (alice, bob) = (account(1), account(2));
    create(&t.store, &alice, None).await;
    create(&t.store, &bob, None).await;
    let (kept, temp) = (blob_ref(b"kept"), blob_ref(b"temp"));
    for (r, key) in [(&kept, "tmp-1"), (&temp, "tmp-2")] {
        let upload = NewUpload {
            cid: r.cid,
            mime_type: r.mime_type.clone(),
            size: r.size,
            temp_key: key.to_owned(),
        };
        t.store
            .register_upload(&alice.did, upload, at(1))
            .await
            .unwrap();
    }
    let outcome = write(
        &t.store,
        &alice,
        &[create_write(
            "app.bsky.feed.post",
            "a",
            post("a", Some(&kept)),
        )],
    )
    .await
    .unwrap();
    assert_eq!(outcome.promoted_blobs.len(), 1);
    let pending = || t.store.pending_quarantine_moves(None, 10);
    assert_eq!(pending().await.unwrap(), vec![]);
    for r in [&kept, &temp] {
        t.store
            .set_blob_takedown(&alice.did, &r.cid, Some("b".to_owned()))
            .await
            .unwrap();
    }
    // The promoted blob's file is still in temporary storage: nothing to move yet.
    assert_eq!(pending().await.unwrap(), vec![]);
    t.store
        .finish_blob_promotion(&alice.did, &kept.cid)
        .await
        .unwrap();
    let into = QuarantineMove {
        did: alice.did.clone(),
        cid: kept.cid,
        quarantine: true,
    };
    assert_eq!(pending().await.unwrap(), vec![into.clone()]);
    assert_eq!(
        t.store
            .pending_quarantine_moves(Some(&alice.did), 10)
            .await
            .unwrap(),
        vec![into]
    );
    assert_eq!(
        t.store
            .pending_quarantine_moves(Some(&bob.did), 10)
            .await
            .unwrap(),
        vec![]
    );
    // Recorded: done. Lifted: the move back is pending until recorded.
    assert!(
        t.store
            .set_blob_quarantined(&alice.did, &kept.cid, true)
            .await
            .unwrap()
    );
    assert_eq!(pending().await.unwrap(), vec![]);
    t.store
        .set_blob_takedown(&alice.did, &kept.cid, None)
        .await
        .unwrap();
    let back = QuarantineMove {
        did: alice.did.clone(),
        cid: kept.cid,
        quarantine: false,
    };
    assert_eq!(pending().await.unwrap(), vec![back]);
    t.store
        .set_blob_quarantined(&alice.did, &kept.cid, false)
        .await
        .unwrap();
    assert_eq!(pending().await.unwrap(), vec![]);
    assert!(
        !t.store
            .set_blob_quarantined(&bob.did, &kept.cid, true)
            .await
            .unwrap()
    );
}

fn code(name: &str, uses: u32) -> NewInviteCode {
    NewInviteCode {
        code: name.to_owned(),
        available_uses: uses,
        for_account: "admin".to_owned(),
        created_by: "admin".to_owned(),
    }
}

async fn codes_in_pages(t: &TestStore, sort: InviteSort, page: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let got = t
            .store
            .list_all_invite_codes(sort, after.clone(), page)
            .await
            .unwrap();
        let Some(last) = got.last() else {
            return out;
        };
        let key = match sort {
            InviteSort::Recent => last.created_at.timestamp_millis(),
            InviteSort::Usage => last.uses.len() as i64,
        };
        after = Some(InviteCursor {
            key,
            code: last.code.clone(),
        });
        out.extend(got.iter().map(|c| c.code.clone()));
    }
}

#[tokio::test]
async fn invite_codes_page_by_recency_and_usage() {
    let t = open_store();
    t.store
        .create_invite_codes(vec![code("a", 5), code("b", 5)], at(1))
        .await
        .unwrap();
    t.store
        .create_invite_codes(vec![code("c", 5)], at(2))
        .await
        .unwrap();
    let alice = account(1);
    let bob = account(2);
    for (acct, used) in [(&alice, "b"), (&bob, "b")] {
        let genesis =
            atp_repo::format_genesis(&acct.did, Vec::new(), &acct.key, &next_tid()).unwrap();
        t.store
            .create_account(
                pds_store::NewAccount {
                    did: acct.did.clone(),
                    handle: acct.handle.clone(),
                    email: None,
                    password_hash: None,
                    invite_code: Some(used.to_owned()),
                    deactivated: false,
                },
                pds_store::RepoCommit::new(genesis),
                vec![],
                at(3),
            )
            .await
            .unwrap();
    }
    for page in [1, 2, 10] {
        assert_eq!(
            codes_in_pages(&t, InviteSort::Recent, page).await,
            vec!["c", "b", "a"],
            "recent, pages of {page}"
        );
        assert_eq!(
            codes_in_pages(&t, InviteSort::Usage, page).await,
            vec!["b", "c", "a"],
            "usage, pages of {page}"
        );
    }
    let invited = t.store.invited_by(&alice.did).await.unwrap().unwrap();
    assert_eq!((invited.code.as_str(), invited.uses.len()), ("b", 2));
    assert!(t.store.invited_by(&account(3).did).await.unwrap().is_none());
}

#[tokio::test]
async fn search_by_email_fragment_and_page_by_did() {
    let t = open_store();
    let (a, b, c) = (account(1), account(2), account(3));
    create(&t.store, &a, Some("Ann@Example.com")).await;
    create(&t.store, &b, Some("bo_b@example.org")).await;
    create(&t.store, &c, None).await;
    let dids = |v: Vec<pds_store::Account>| v.into_iter().map(|a| a.did).collect::<Vec<_>>();
    let all = t.store.search_accounts(None, None, 10).await.unwrap();
    assert_eq!(dids(all), vec![a.did.clone(), b.did.clone(), c.did.clone()]);
    let found = t
        .store
        .search_accounts(Some("ann@"), None, 10)
        .await
        .unwrap();
    assert_eq!(dids(found), vec![a.did.clone()]);
    // `_` and `%` are literal, not wildcards.
    let found = t
        .store
        .search_accounts(Some("o_b"), None, 10)
        .await
        .unwrap();
    assert_eq!(dids(found), vec![b.did.clone()]);
    let found = t
        .store
        .search_accounts(Some("n_@"), None, 10)
        .await
        .unwrap();
    assert!(found.is_empty());
    let page = t
        .store
        .search_accounts(None, Some(&a.did), 1)
        .await
        .unwrap();
    assert_eq!(dids(page), vec![b.did.clone()]);
}

#[tokio::test]
async fn deleting_an_account_drops_its_earlier_events() {
    let t = open_store();
    let (alice, bob) = (account(1), account(2));
    create(&t.store, &alice, None).await;
    create(&t.store, &bob, None).await;
    t.store
        .delete_account(
            &alice.did,
            Some(event(EventKind::Account, "deleted")),
            at(9),
        )
        .await
        .unwrap();
    let events = t.store.events_after(0, 100).await.unwrap();
    let alice_events: Vec<&[u8]> = events
        .iter()
        .filter(|e| e.did == alice.did)
        .map(|e| e.body.as_slice())
        .collect();
    assert_eq!(alice_events, vec![b"deleted".as_slice()]);
    assert_eq!(events.iter().filter(|e| e.did == bob.did).count(), 3);
}
