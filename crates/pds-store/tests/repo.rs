//! Repository writes on real SQLite: genesis, commits through `atp_repo::format_commit`, the
//! records index, blocks, events, the compare-and-set on the root, and the blob lifecycle.

mod fixture;

use atp_repo::BlockStore;
use fixture::*;
use pds_store::{
    BlobStatus, EventKind, ListRecords, MissingBlobs, NewUpload, RepoCommit, StoreError,
    UploadOutcome,
};

#[tokio::test]
async fn create_account_with_genesis() {
    let t = open_store();
    let alice = account(1);
    let seqs = create(&t.store, &alice, Some("alice@example.com")).await;
    assert_eq!(seqs, vec![1, 2, 3]);
    check_consistent(&t.store, &alice).await;

    let events = t.store.events_after(0, 10).await.unwrap();
    let kinds: Vec<_> = events
        .iter()
        .map(|e| (e.seq, e.kind, e.did.clone()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (1, EventKind::Identity, alice.did.clone()),
            (2, EventKind::Account, alice.did.clone()),
            (3, EventKind::Commit, alice.did.clone()),
        ]
    );
    assert_eq!(events[2].body, b"genesis");
    assert_eq!(events[2].time, at(0));
    assert_eq!(t.store.last_seq().await.unwrap(), 3);

    // Creating it again is refused and changes nothing.
    let before = dump(&t.store);
    let genesis =
        atp_repo::format_genesis(&alice.did, Vec::new(), &alice.key, &next_tid()).unwrap();
    let err = t
        .store
        .create_account(
            pds_store::NewAccount {
                did: alice.did.clone(),
                handle: "other.test".parse().unwrap(),
                email: None,
                password_hash: None,
                invite_code: None,
                deactivated: false,
            },
            RepoCommit::new(genesis),
            vec![event(EventKind::Account, "again")],
            at(5),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        StoreError::DidTaken {
            did: alice.did.clone()
        }
    );
    assert_eq!(dump(&t.store), before);
}

#[tokio::test]
async fn commits_update_index_blocks_root_and_events() {
    let t = open_store();
    let alice = account(2);
    create(&t.store, &alice, None).await;
    let posts = "app.bsky.feed.post";

    let first = write(
        &t.store,
        &alice,
        &[
            create_write(posts, "3aaaaaaaaaa22", post("one", None)),
            create_write(posts, "3aaaaaaaaaa23", post("two", None)),
            create_write("app.bsky.actor.profile", "self", post("me", None)),
        ],
    )
    .await
    .unwrap();
    assert_eq!(first.seq, 4);
    check_consistent(&t.store, &alice).await;

    let second = write(
        &t.store,
        &alice,
        &[
            update_write(posts, "3aaaaaaaaaa22", post("one, edited", None)),
            delete_write(posts, "3aaaaaaaaaa23"),
            create_write(posts, "3aaaaaaaaaa24", post("three", None)),
        ],
    )
    .await
    .unwrap();
    assert_eq!(second.seq, 5);
    check_consistent(&t.store, &alice).await;

    // Records index reads.
    let one = t
        .store
        .get_record(&alice.did, &nsid(posts), &rkey("3aaaaaaaaaa22"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        atp_data::cbor::from_slice(&one.bytes).unwrap(),
        post("one, edited", None)
    );
    assert_eq!(one.uri, format!("at://{}/{posts}/3aaaaaaaaaa22", alice.did));
    let root = t.store.repo_root(&alice.did).await.unwrap().unwrap();
    assert_eq!(one.rev, root.rev);
    assert!(
        t.store
            .get_record(&alice.did, &nsid(posts), &rkey("3aaaaaaaaaa23"))
            .await
            .unwrap()
            .is_none()
    );

    let newest_first = t
        .store
        .list_records(
            &alice.did,
            &nsid(posts),
            ListRecords {
                limit: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(newest_first[0].rkey.as_str(), "3aaaaaaaaaa24");
    let next = t
        .store
        .list_records(
            &alice.did,
            &nsid(posts),
            ListRecords {
                limit: 10,
                cursor: Some(newest_first[0].rkey.clone()),
                reverse: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        next.iter().map(|r| r.rkey.as_str()).collect::<Vec<_>>(),
        ["3aaaaaaaaaa22"]
    );
    let ascending = t
        .store
        .list_records(
            &alice.did,
            &nsid(posts),
            ListRecords {
                limit: 10,
                cursor: None,
                reverse: true,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        ascending
            .iter()
            .map(|r| r.rkey.as_str())
            .collect::<Vec<_>>(),
        ["3aaaaaaaaaa22", "3aaaaaaaaaa24"]
    );
    let collections = t.store.list_collections(&alice.did).await.unwrap();
    assert_eq!(
        collections.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        ["app.bsky.actor.profile", posts]
    );
    assert_eq!(t.store.count_records(&alice.did).await.unwrap(), 3);

    // Block revisions: blocks_since(first rev) are exactly the second commit's new blocks.
    let blocks = t.store.block_store(&alice.did);
    let first_rev = blocks.rev_of(&root.commit).await.unwrap().unwrap();
    assert_eq!(first_rev, root.rev);
    let head = t.store.repo_head(&alice.did).await.unwrap().unwrap();
    let since = t.store.events_after(4, 10).await.unwrap();
    assert_eq!(since.len(), 1);
    let mut paged = Vec::new();
    let mut after = None;
    let earlier_rev = {
        let conn = raw(&t.store);
        let revs: Vec<String> = conn
            .prepare("SELECT DISTINCT rev FROM repo_block WHERE did = ?1 ORDER BY rev")
            .unwrap()
            .query_map([alice.did.as_str()], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(revs.len() >= 2, "blocks of several revisions: {revs:?}");
        revs[revs.len() - 2].parse().unwrap()
    };
    loop {
        let page = blocks
            .blocks_since_page(&earlier_rev, after.as_ref(), 2)
            .await
            .unwrap();
        after = page.last().map(|(c, _)| *c);
        let done = page.len() < 2;
        paged.extend(page);
        if done {
            break;
        }
    }
    assert!(paged.iter().any(|(cid, _)| *cid == head.cid));
    for (cid, _) in &paged {
        assert_eq!(blocks.rev_of(cid).await.unwrap().unwrap(), root.rev);
    }
}

#[tokio::test]
async fn identical_records_keep_their_shared_block() {
    let t = open_store();
    let alice = account(3);
    create(&t.store, &alice, None).await;
    // Two identical records far apart in key order, with enough other records between them
    // that they sit in different MST nodes: the diff of deleting one cannot see the other.
    let (first, last) = ("app.bsky.feed.like", "com.example.thing");
    let same = post("same", None);
    let mut writes: Vec<_> = (0..64)
        .map(|i| {
            create_write(
                "app.bsky.feed.post",
                &format!("3aaaaaaaab{i:03}"),
                post(&format!("filler {i}"), None),
            )
        })
        .collect();
    writes.push(create_write(first, "3aaaaaaaaaa22", same.clone()));
    writes.push(create_write(last, "3aaaaaaaaaa23", same.clone()));
    write(&t.store, &alice, &writes).await.unwrap();
    check_consistent(&t.store, &alice).await;
    write(&t.store, &alice, &[delete_write(first, "3aaaaaaaaaa22")])
        .await
        .unwrap();
    check_consistent(&t.store, &alice).await;
    let left = t
        .store
        .get_record(&alice.did, &nsid(last), &rkey("3aaaaaaaaaa23"))
        .await
        .unwrap()
        .expect("the other record and its block survive");
    assert_eq!(atp_data::cbor::from_slice(&left.bytes).unwrap(), same);
    write(&t.store, &alice, &[delete_write(last, "3aaaaaaaaaa23")])
        .await
        .unwrap();
    check_consistent(&t.store, &alice).await;
}

#[tokio::test]
async fn root_moved_writes_nothing() {
    let t = open_store();
    let alice = account(4);
    create(&t.store, &alice, None).await;
    let posts = "app.bsky.feed.post";
    write(
        &t.store,
        &alice,
        &[create_write(posts, "3aaaaaaaaaa22", post("a", None))],
    )
    .await
    .unwrap();

    // Two commits formatted on the same head: the second must lose.
    let first = format(
        &t.store,
        &alice,
        &[create_write(posts, "3aaaaaaaaaa23", post("b", None))],
    )
    .await;
    let data = b"picture";
    upload(&t, &alice, data, "tmp-1").await;
    let stale = format(
        &t.store,
        &alice,
        &[
            create_write(posts, "3aaaaaaaaaa24", post("c", Some(&blob_ref(data)))),
            delete_write(posts, "3aaaaaaaaaa22"),
        ],
    )
    .await;
    t.store
        .commit_repo(&alice.did, first, event(EventKind::Commit, "first"), at(2))
        .await
        .unwrap();
    let before = dump(&t.store);
    let err = t
        .store
        .commit_repo(&alice.did, stale, event(EventKind::Commit, "stale"), at(3))
        .await
        .unwrap_err();
    let root = t.store.repo_root(&alice.did).await.unwrap().unwrap();
    assert_eq!(
        err,
        StoreError::RootMoved {
            did: alice.did.clone(),
            found: Some(root.commit)
        }
    );
    assert!(err.is_rejection());
    assert_eq!(
        dump(&t.store),
        before,
        "a refused commit changed the database"
    );
    check_consistent(&t.store, &alice).await;

    // A genesis for an account that has a repository is refused the same way.
    let genesis =
        atp_repo::format_genesis(&alice.did, Vec::new(), &alice.key, &next_tid()).unwrap();
    assert_fails!(
        t.store.commit_repo(
            &alice.did,
            RepoCommit::new(genesis),
            event(EventKind::Commit, "g"),
            at(4)
        ),
        StoreError::RootMoved { found: Some(_), .. }
    );
    assert_eq!(dump(&t.store), before);
}

async fn upload(t: &TestStore, acct: &TestAccount, data: &[u8], key: &str) -> UploadOutcome {
    let r = blob_ref(data);
    t.store
        .register_upload(
            &acct.did,
            NewUpload {
                cid: r.cid,
                mime_type: r.mime_type,
                size: r.size,
                temp_key: key.to_owned(),
            },
            at(1),
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn blob_lifecycle() {
    let t = open_store();
    let alice = account(5);
    create(&t.store, &alice, None).await;
    let posts = "app.bsky.feed.post";
    let data = b"an image";
    let image = blob_ref(data);

    // Referencing a blob that was never uploaded is refused.
    let err = write(
        &t.store,
        &alice,
        &[create_write(
            posts,
            "3aaaaaaaaaa22",
            post("x", Some(&image)),
        )],
    )
    .await
    .unwrap_err();
    assert_eq!(err, StoreError::BlobNotFound { cid: image.cid });

    assert_eq!(
        upload(&t, &alice, data, "tmp-a").await,
        UploadOutcome::Temporary
    );
    assert_eq!(
        upload(&t, &alice, data, "tmp-b").await,
        UploadOutcome::ReplacedTemporary {
            old_temp_key: Some("tmp-a".to_owned())
        }
    );
    let meta = t
        .store
        .get_blob(&alice.did, &image.cid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (meta.status, meta.temp_key.as_deref(), meta.size),
        (BlobStatus::Temporary, Some("tmp-b"), 8)
    );

    // temporary → permanent when a record references it.
    let out = write(
        &t.store,
        &alice,
        &[create_write(
            posts,
            "3aaaaaaaaaa22",
            post("x", Some(&image)),
        )],
    )
    .await
    .unwrap();
    assert_eq!(out.promoted_blobs.len(), 1);
    assert_eq!(out.promoted_blobs[0].cid, image.cid);
    assert_eq!(out.promoted_blobs[0].temp_key.as_deref(), Some("tmp-b"));
    assert!(out.unreferenced_blobs.is_empty());
    let pending = t.store.pending_blob_promotions(10).await.unwrap();
    assert_eq!(pending.len(), 1);
    t.store
        .finish_blob_promotion(&alice.did, &image.cid)
        .await
        .unwrap();
    assert!(
        t.store
            .pending_blob_promotions(10)
            .await
            .unwrap()
            .is_empty()
    );
    let meta = t
        .store
        .get_blob(&alice.did, &image.cid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((meta.status, meta.temp_key), (BlobStatus::Permanent, None));
    assert_eq!(
        upload(&t, &alice, data, "tmp-c").await,
        UploadOutcome::AlreadyPermanent
    );

    // A second record references it too; deleting the first keeps it.
    let out = write(
        &t.store,
        &alice,
        &[create_write(
            posts,
            "3aaaaaaaaaa23",
            post("y", Some(&image)),
        )],
    )
    .await
    .unwrap();
    assert!(out.promoted_blobs.is_empty());
    assert_eq!(
        t.store
            .list_blobs(&alice.did, None, None, 10)
            .await
            .unwrap(),
        vec![image.cid]
    );
    let out = write(&t.store, &alice, &[delete_write(posts, "3aaaaaaaaaa22")])
        .await
        .unwrap();
    assert!(out.unreferenced_blobs.is_empty());

    // Updating the last referencing record to drop the image: unreferenced, row gone.
    let out = write(
        &t.store,
        &alice,
        &[update_write(posts, "3aaaaaaaaaa23", post("y", None))],
    )
    .await
    .unwrap();
    assert_eq!(out.unreferenced_blobs, vec![image.cid]);
    assert!(
        t.store
            .get_blob(&alice.did, &image.cid)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        t.store
            .list_blobs(&alice.did, None, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    check_consistent(&t.store, &alice).await;

    // Stale temporary uploads are collectable; referenced ones are not.
    let other = b"never used";
    upload(&t, &alice, other, "tmp-d").await;
    let stale = t.store.stale_temporary_blobs(at(100), 10).await.unwrap();
    assert_eq!(stale.len(), 1);
    assert_eq!(stale[0].temp_key, "tmp-d");
    assert_eq!(
        t.store
            .delete_temporary_blob(&alice.did, &stale[0].cid)
            .await
            .unwrap()
            .as_deref(),
        Some("tmp-d")
    );
    assert!(
        t.store
            .stale_temporary_blobs(at(100), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn imported_records_expect_missing_blobs() {
    let t = open_store();
    let alice = account(6);
    create(&t.store, &alice, None).await;
    let posts = "app.bsky.feed.post";
    let (a, b) = (b"blob a".as_slice(), b"blob b".as_slice());
    let mut repo = format(
        &t.store,
        &alice,
        &[
            create_write(posts, "3aaaaaaaaaa22", post("a", Some(&blob_ref(a)))),
            create_write(posts, "3aaaaaaaaaa23", post("b", Some(&blob_ref(b)))),
        ],
    )
    .await;
    // Derive the refs from the blocks, as an importer would.
    repo =
        RepoCommit::with_blobs_from_blocks(&alice.did, repo.commit, MissingBlobs::Expect).unwrap();
    assert_eq!(repo.record_blobs.len(), 2);
    t.store
        .commit_repo(&alice.did, repo, event(EventKind::Commit, "import"), at(1))
        .await
        .unwrap();
    let missing = t
        .store
        .list_missing_blobs(&alice.did, None, 10)
        .await
        .unwrap();
    assert_eq!(missing.len(), 2);
    let counts = t.store.blob_counts(&alice.did).await.unwrap();
    assert_eq!((counts.expected, counts.imported), (2, 0));

    // Uploading an expected blob promotes it directly.
    assert_eq!(
        upload(&t, &alice, a, "tmp-a").await,
        UploadOutcome::Promoted
    );
    let meta = t
        .store
        .get_blob(&alice.did, &blob_ref(a).cid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (meta.status, meta.temp_key.as_deref()),
        (BlobStatus::Permanent, Some("tmp-a"))
    );
    let missing = t
        .store
        .list_missing_blobs(&alice.did, None, 10)
        .await
        .unwrap();
    assert_eq!(
        missing.iter().map(|m| m.cid).collect::<Vec<_>>(),
        vec![blob_ref(b).cid]
    );
    assert_eq!(
        missing[0].record_uri,
        format!("at://{}/{posts}/3aaaaaaaaaa23", alice.did)
    );
    let counts = t.store.blob_counts(&alice.did).await.unwrap();
    assert_eq!((counts.expected, counts.imported), (2, 1));

    // Deleting the record of a still-missing blob drops the expectation (no file to delete).
    let out = write(&t.store, &alice, &[delete_write(posts, "3aaaaaaaaaa23")])
        .await
        .unwrap();
    assert!(out.unreferenced_blobs.is_empty());
    assert!(
        t.store
            .list_missing_blobs(&alice.did, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    check_consistent(&t.store, &alice).await;
}

#[tokio::test]
async fn block_store_contract() {
    let t = open_store();
    let alice = account(7);
    create(&t.store, &alice, None).await;
    let blocks = t.store.block_store(&alice.did);
    let bytes = atp_data::cbor::to_vec(&post("staged", None));
    let cid = atp_data::cid::cid_for_cbor(&bytes);
    let rev = next_tid();
    blocks
        .put_blocks(&[(cid, bytes.clone())].into(), &rev)
        .await
        .unwrap();
    assert_eq!(blocks.get_block(&cid).await.unwrap(), Some(bytes.clone()));
    assert_eq!(blocks.rev_of(&cid).await.unwrap(), Some(rev));
    let absent = atp_data::cid::cid_for_cbor(b"\xa0");
    let found = blocks.get_blocks(&[cid, absent, absent]).await.unwrap();
    assert_eq!(found.blocks.len(), 1);
    assert_eq!(found.missing, vec![absent]);
    let bad = blocks
        .put_blocks(&[(absent, bytes.clone())].into(), &next_tid())
        .await
        .unwrap_err();
    assert_eq!(bad, atp_repo::StoreError::HashMismatch { cid: absent });
    blocks.delete_blocks(&[cid]).await.unwrap();
    assert!(!blocks.has_block(&cid).await.unwrap());
    // Another account does not see this account's blocks.
    let bob = account(8);
    create(&t.store, &bob, None).await;
    let alice_root = t.store.repo_root(&alice.did).await.unwrap().unwrap();
    assert!(
        !t.store
            .block_store(&bob.did)
            .has_block(&alice_root.commit)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn commit_checks_its_input() {
    let t = open_store();
    let alice = account(9);
    let bob = account(10);
    create(&t.store, &alice, None).await;
    create(&t.store, &bob, None).await;
    let repo = format(
        &t.store,
        &alice,
        &[create_write(
            "app.bsky.feed.post",
            "3aaaaaaaaaa22",
            post("a", None),
        )],
    )
    .await;
    let before = dump(&t.store);
    assert_fails!(
        t.store
            .commit_repo(&bob.did, repo.clone(), event(EventKind::Commit, "x"), at(1)),
        StoreError::InvalidCommit { .. }
    );
    let mut extra = repo.clone();
    extra
        .record_blobs
        .insert("app.bsky.feed.post/other".to_owned(), vec![blob_ref(b"x")]);
    assert_fails!(
        t.store
            .commit_repo(&alice.did, extra, event(EventKind::Commit, "x"), at(1)),
        StoreError::InvalidCommit { .. }
    );
    let nobody = account(11);
    let genesis =
        atp_repo::format_genesis(&nobody.did, Vec::new(), &nobody.key, &next_tid()).unwrap();
    let err = t
        .store
        .commit_repo(
            &nobody.did,
            RepoCommit::new(genesis),
            event(EventKind::Commit, "x"),
            at(1),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        StoreError::AccountNotFound {
            did: nobody.did.clone()
        }
    );
    assert_eq!(dump(&t.store), before);
}
