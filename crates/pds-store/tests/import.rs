//! Repository import on real SQLite: staging, the switch-over transaction (only blocks reachable
//! from the commit are kept, the records index and blob states follow the imported records, no
//! event), clearing a failed import, and activation with a re-signed head (compare-and-set).

mod fixture;

use atp_repo::{BlockStore, Traversal, Visit};
use fixture::*;
use pds_store::{
    BlobStatus, EventKind, ImportedHead, NewUpload, ResignedHead, StagedRecord, StoreError,
};

/// Stages `commit` (plus a junk block) and walks it as the server does.
async fn stage(store: &pds_store::Store, acct: &TestAccount, commit: &atp_repo::CommitData) {
    let staging = store.import_staging(&acct.did);
    staging.clear().await.unwrap();
    let mut blocks = commit.new_blocks.clone();
    let junk = atp_data::cbor::to_vec(&atp_data::Value::from("junk"));
    blocks.insert(atp_data::cid::cid_for_cbor(&junk), junk);
    staging.put_blocks(&blocks, &next_tid()).await.unwrap();
    let mut walk = Traversal::new(&staging, commit.data).skip_repeated_records(false);
    let (mut nodes, mut records) = (Vec::new(), Vec::new());
    while let Some(visit) = walk.next().await.unwrap() {
        match visit {
            Visit::Node { cid, .. } => nodes.push(cid),
            Visit::Record { key, cid, bytes } => {
                let value = atp_data::cbor::from_slice(&bytes.unwrap()).unwrap();
                let (c, k) = key.split_once('/').unwrap();
                records.push(StagedRecord {
                    collection: nsid(c),
                    rkey: rkey(k),
                    cid,
                    blobs: atp_data::blob::collect(&value),
                });
            }
        }
    }
    staging.mark_nodes(nodes).await.unwrap();
    staging.stage_records(records).await.unwrap();
}

fn staged_rows(store: &pds_store::Store) -> i64 {
    raw(store)
        .query_row(
            "SELECT (SELECT COUNT(*) FROM import_block) + (SELECT COUNT(*) FROM import_record)
                  + (SELECT COUNT(*) FROM import_record_blob)",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

#[tokio::test]
async fn import_replaces_the_repository_in_one_transaction() {
    let t = open_store();
    let alice = account(1);
    create(&t.store, &alice, None).await;
    // The account's current repository: a post with an uploaded (permanent) blob.
    let old_blob = blob_ref(b"old image");
    t.store
        .register_upload(
            &alice.did,
            NewUpload {
                cid: old_blob.cid,
                mime_type: "image/png".into(),
                size: old_blob.size,
                temp_key: "tmp-old".into(),
            },
            at(0),
        )
        .await
        .unwrap();
    write(
        &t.store,
        &alice,
        &[create_write(
            "app.bsky.feed.post",
            "3kold",
            post("old", Some(&old_blob)),
        )],
    )
    .await
    .unwrap();
    // A blob uploaded before the import, which an imported record references.
    let early = blob_ref(b"early image");
    t.store
        .register_upload(
            &alice.did,
            NewUpload {
                cid: early.cid,
                mime_type: "image/png".into(),
                size: early.size,
                temp_key: "tmp-early".into(),
            },
            at(0),
        )
        .await
        .unwrap();
    let missing = blob_ref(b"not uploaded yet");
    let mut records = vec![
        (
            nsid("app.bsky.feed.post"),
            rkey("3ka"),
            post("a", Some(&early)),
        ),
        (
            nsid("app.bsky.feed.post"),
            rkey("3kb"),
            post("b", Some(&missing)),
        ),
    ];
    for i in 0..50 {
        records.push((
            nsid("app.bsky.feed.like"),
            rkey(&format!("3kl{i:03}")),
            post("like", None),
        ));
    }
    let imported = atp_repo::format_genesis(&alice.did, records, &alice.key, &next_tid()).unwrap();
    let events_before = t.store.last_seq().await.unwrap();
    stage(&t.store, &alice, &imported).await;
    assert!(staged_rows(&t.store) > 0);
    let outcome = t
        .store
        .finish_import(
            &alice.did,
            ImportedHead {
                commit: imported.cid,
                rev: imported.rev.clone(),
                data: imported.data,
            },
            at(2),
        )
        .await
        .unwrap();
    assert_eq!(outcome.records, 52);
    // Consistent: exactly commit + nodes + records (the junk block is gone), index = MST.
    check_consistent(&t.store, &alice).await;
    assert_eq!(staged_rows(&t.store), 0, "staging cleared");
    assert_eq!(t.store.last_seq().await.unwrap(), events_before, "no event");
    let root = t.store.repo_root(&alice.did).await.unwrap().unwrap();
    assert_eq!(
        (root.commit, root.rev),
        (imported.cid, imported.rev.clone())
    );
    // Blobs: the early upload is now permanent (pending its move), the missing one expected, the
    // old one unreferenced.
    assert_eq!(outcome.promoted_blobs.len(), 1);
    assert_eq!(outcome.promoted_blobs[0].cid, early.cid);
    assert_eq!(outcome.unreferenced_blobs, vec![old_blob.cid]);
    let status = |cid| {
        let store = t.store.clone();
        let did = alice.did.clone();
        async move { store.get_blob(&did, &cid).await.unwrap().map(|b| b.status) }
    };
    assert_eq!(status(early.cid).await, Some(BlobStatus::Permanent));
    assert_eq!(status(missing.cid).await, Some(BlobStatus::Expected));
    assert_eq!(status(old_blob.cid).await, None);
    let listed = t
        .store
        .list_missing_blobs(&alice.did, None, 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].cid, missing.cid);
    assert_eq!(
        listed[0].record_uri,
        format!("at://{}/app.bsky.feed.post/3kb", alice.did)
    );
}

#[tokio::test]
async fn a_cleared_import_changes_nothing() {
    let t = open_store();
    let alice = account(2);
    create(&t.store, &alice, None).await;
    let before = dump(&t.store);
    let imported = atp_repo::format_genesis(
        &alice.did,
        vec![(nsid("app.bsky.feed.post"), rkey("3ka"), post("a", None))],
        &alice.key,
        &next_tid(),
    )
    .unwrap();
    stage(&t.store, &alice, &imported).await;
    t.store.import_staging(&alice.did).clear().await.unwrap();
    assert_eq!(dump(&t.store), before);
    // Finishing without a staged commit is refused.
    let err = t
        .store
        .finish_import(
            &alice.did,
            ImportedHead {
                commit: imported.cid,
                rev: imported.rev.clone(),
                data: imported.data,
            },
            at(2),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidCommit { .. }), "{err}");
    assert_eq!(dump(&t.store), before);
}

#[tokio::test]
async fn activation_with_a_resigned_head() {
    let t = open_store();
    let alice = account(3);
    create(&t.store, &alice, None).await;
    write(
        &t.store,
        &alice,
        &[create_write("app.bsky.feed.post", "3ka", post("a", None))],
    )
    .await
    .unwrap();
    t.store
        .deactivate_account(&alice.did, at(3), None, vec![])
        .await
        .unwrap();
    let head = t.store.repo_head(&alice.did).await.unwrap().unwrap();
    let rev = atp_repo::next_rev(head.commit.rev(), &next_tid()).unwrap();
    let signed = atp_repo::UnsignedCommit::v3(alice.did.clone(), *head.commit.data(), rev.clone())
        .sign(&alice.key)
        .unwrap();
    let bytes = signed.to_cbor();
    let resigned = ResignedHead {
        prev: head.cid,
        commit: atp_data::cid::cid_for_cbor(&bytes),
        bytes,
        rev: rev.clone(),
        data: *head.commit.data(),
    };
    // A stale prev: refused, nothing changes.
    let before = dump(&t.store);
    let stale = ResignedHead {
        prev: resigned.commit,
        ..resigned.clone()
    };
    let err = t
        .store
        .activate_account_with_head(
            &alice.did,
            Some(stale),
            vec![event(EventKind::Sync, "s")],
            at(4),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::RootMoved { .. }), "{err}");
    assert_eq!(dump(&t.store), before);
    // The real one.
    let seqs = t
        .store
        .activate_account_with_head(
            &alice.did,
            Some(resigned.clone()),
            vec![event(EventKind::Identity, "i"), event(EventKind::Sync, "s")],
            at(4),
        )
        .await
        .unwrap();
    assert_eq!(seqs.len(), 2);
    let root = t.store.repo_root(&alice.did).await.unwrap().unwrap();
    assert_eq!((root.commit, root.rev), (resigned.commit, rev));
    let blocks = t.store.block_store(&alice.did);
    assert!(
        !blocks.has_block(&head.cid).await.unwrap(),
        "old commit block deleted"
    );
    check_consistent(&t.store, &alice).await;
    let account = t.store.get_account(&alice.did).await.unwrap().unwrap();
    assert!(account.is_active());
}
