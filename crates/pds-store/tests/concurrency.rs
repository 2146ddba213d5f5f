//! Concurrency and durability: many writers, reads during writes, reopening, and a writer
//! process killed mid-flight.

mod fixture;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use atp_repo::format_commit;
use fixture::*;
use pds_store::{EventKind, RepoCommit, Store, StoreError};

const POSTS: &str = "app.bsky.feed.post";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_on_many_accounts() {
    let t = open_store();
    let accounts: Vec<Arc<TestAccount>> = (0..12).map(|i| Arc::new(account(100 + i))).collect();
    for acct in &accounts {
        create(&t.store, acct, None).await;
    }
    let mut tasks = Vec::new();
    for acct in &accounts {
        for n in 0..4 {
            let (store, acct) = (t.store.clone(), Arc::clone(acct));
            tasks.push(tokio::spawn(async move {
                let _guard = store.lock_repo(&acct.did).await;
                let key = format!("3aaaaaaaab{n:03}");
                write(
                    &store,
                    &acct,
                    &[create_write(POSTS, &key, post(&key, None))],
                )
                .await
                .unwrap()
                .seq
            }));
        }
    }
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.push(task.await.unwrap());
    }
    seqs.sort_unstable();
    let before = seqs.len();
    seqs.dedup();
    assert_eq!(seqs.len(), before, "two commits got the same seq");
    assert!(t.store.repo_locks().is_empty());

    // The log is gap-free and, per account, in commit order (revisions increase with seq).
    let events = t.store.events_after(0, 1000).await.unwrap();
    assert_eq!(events.len(), accounts.len() * (3 + 4));
    assert!(events.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    assert_eq!(
        t.store.last_seq().await.unwrap(),
        events.last().unwrap().seq
    );
    let mut revs_per_account: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| e.kind == EventKind::Commit && e.body != b"genesis")
    {
        let rev = String::from_utf8(e.body.clone()).unwrap();
        revs_per_account
            .entry(e.did.to_string())
            .or_default()
            .push(rev);
    }
    assert_eq!(revs_per_account.len(), accounts.len());
    for (did, revs) in &revs_per_account {
        assert_eq!(revs.len(), 4);
        assert!(
            revs.windows(2).all(|w| w[0] < w[1]),
            "{did}: events out of commit order: {revs:?}"
        );
    }
    for acct in &accounts {
        check_consistent(&t.store, acct).await;
        assert_eq!(t.store.count_records(&acct.did).await.unwrap(), 4);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_on_one_account_never_corrupt_it() {
    let t = open_store();
    let acct = Arc::new(account(200));
    create(&t.store, &acct, None).await;
    // Without the repo lock: every commit lands, is refused as RootMoved, or fails to format
    // because a racing commit already deleted the nodes of the head it read.
    let mut tasks = Vec::new();
    for n in 0..8 {
        let (store, acct) = (t.store.clone(), Arc::clone(&acct));
        tasks.push(tokio::spawn(async move {
            let key = format!("3aaaaaaaab{n:03}");
            let writes = [create_write(POSTS, &key, post(&key, None))];
            let head = store.repo_head(&acct.did).await.unwrap();
            let blocks = store.block_store(&acct.did);
            let tid = next_tid();
            let formatted =
                format_commit(&blocks, head.as_ref(), &acct.did, &writes, &acct.key, &tid).await;
            let Ok(commit) = formatted else {
                return None;
            };
            let body = event(EventKind::Commit, "c");
            Some(
                store
                    .commit_repo(&acct.did, RepoCommit::new(commit), body, at(1))
                    .await,
            )
        }));
    }
    let mut landed = 0;
    for task in tasks {
        match task.await.unwrap() {
            Some(Ok(_)) => landed += 1,
            None | Some(Err(StoreError::RootMoved { .. })) => {}
            Some(Err(e)) => panic!("unexpected error {e}"),
        }
    }
    assert!(landed >= 1);
    assert_eq!(t.store.count_records(&acct.did).await.unwrap(), landed);
    check_consistent(&t.store, &acct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_do_not_wait_for_writes() {
    let t = open_store();
    let alice = account(300);
    create(&t.store, &alice, None).await;
    let mut seq_rx = t.store.subscribe_seq();
    assert_eq!(*seq_rx.borrow_and_update(), 3);

    // Another connection holds the write lock with an uncommitted change.
    let blocker = raw(&t.store);
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    blocker
        .execute(
            "UPDATE account SET password_hash = 'uncommitted' WHERE did = ?1",
            [alice.did.as_str()],
        )
        .unwrap();

    // A store write queues behind it...
    let writer = {
        let store = t.store.clone();
        tokio::spawn(async move {
            let acct = account(301);
            create(&store, &acct, None).await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!writer.is_finished());
    // ...but reads still answer at once, from the last committed state.
    for _ in 0..20 {
        let a = tokio::time::timeout(Duration::from_secs(2), t.store.get_account(&alice.did))
            .await
            .expect("a read waited for the writer")
            .unwrap()
            .unwrap();
        assert_eq!(a.password_hash.as_deref(), Some("hash"));
        tokio::time::timeout(Duration::from_secs(2), t.store.repo_head(&alice.did))
            .await
            .expect("a read waited for the writer")
            .unwrap()
            .unwrap();
    }
    blocker.execute_batch("COMMIT").unwrap();
    let seqs = tokio::time::timeout(Duration::from_secs(20), writer)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seqs, vec![4, 5, 6]);
    tokio::time::timeout(Duration::from_secs(5), seq_rx.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(*seq_rx.borrow(), 6);
}

#[tokio::test]
async fn reopening_keeps_data_and_refuses_a_newer_schema() {
    let t = open_store();
    let alice = account(400);
    create(&t.store, &alice, None).await;
    write(
        &t.store,
        &alice,
        &[create_write(POSTS, "3aaaaaaaaaa22", post("kept", None))],
    )
    .await
    .unwrap();
    let before = dump(&t.store);
    drop(t.store);

    let store = Store::open(t.dir.path()).unwrap();
    assert_eq!(dump(&store), before, "reopening changed the database");
    check_consistent(&store, &alice).await;
    store.set_seq_floor(1000).await.unwrap();
    let seq = write(
        &store,
        &alice,
        &[create_write(POSTS, "3aaaaaaaaaa23", post("x", None))],
    )
    .await
    .unwrap()
    .seq;
    assert_eq!(seq, 1000);
    let seq = write(
        &store,
        &alice,
        &[create_write(POSTS, "3aaaaaaaaaa24", post("y", None))],
    )
    .await
    .unwrap()
    .seq;
    assert_eq!(seq, 1001);
    // Pruning never lets a sequence number come back.
    assert_eq!(store.prune_events(at(1000)).await.unwrap(), 6);
    assert_eq!(store.first_seq().await.unwrap(), None);
    let seq = write(
        &store,
        &alice,
        &[create_write(POSTS, "3aaaaaaaaaa25", post("z", None))],
    )
    .await
    .unwrap()
    .seq;
    assert_eq!(seq, 1002);

    raw(&store)
        .execute(
            "INSERT INTO schema_version (version, applied_at) VALUES (?1, 0)",
            [Store::schema_version() + 1],
        )
        .unwrap();
    drop(store);
    let err = Store::open(t.dir.path()).unwrap_err();
    assert_eq!(
        err,
        StoreError::SchemaTooNew {
            found: Store::schema_version() + 1,
            supported: Store::schema_version()
        }
    );
}

/// Set in the child process of [`killed_writer_leaves_a_consistent_database`].
const CHILD_DIR: &str = "PDS_STORE_CRASH_CHILD_DIR";

/// The child: writes commits to several accounts forever (until killed). A no-op unless
/// started by the parent test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child_writer() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let store = Store::open(std::path::Path::new(&dir)).unwrap();
    let accounts: Vec<Arc<TestAccount>> = (0..4).map(|i| Arc::new(crash_account(i))).collect();
    for acct in &accounts {
        create(&store, acct, None).await;
    }
    let mut tasks = Vec::new();
    for acct in accounts {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0.. {
                let key = format!("3aaaaaaab{n:04}");
                let mut writes = vec![create_write(POSTS, &key, post(&key, None))];
                if n % 3 == 2 {
                    writes.push(delete_write(POSTS, &format!("3aaaaaaab{:04}", n - 1)));
                }
                write(&store, &acct, &writes).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// Deterministic keys, so the parent can verify signatures of the child's accounts.
fn crash_account(i: u8) -> TestAccount {
    TestAccount {
        did: format!("did:plc:crash{i:019}").parse().unwrap(),
        handle: format!("crash{i}.test").parse().unwrap(),
        key: atp_crypto::Keypair::from_private_bytes(atp_crypto::Curve::K256, &[i + 1; 32])
            .unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_writer_leaves_a_consistent_database() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Let it commit for a while (waiting until some events exist), then kill it mid-flight.
    let store = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if dir.path().join(pds_store::DB_FILE_NAME).exists()
            && let Ok(store) = Store::open(dir.path())
            && store.last_seq().await.unwrap() > 60
        {
            break store;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child exited early"
        );
    };
    let seen = store.last_seq().await.unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    drop(store);

    let store = Store::open(dir.path()).unwrap();
    let events = store.events_after(0, 100_000).await.unwrap();
    eprintln!(
        "child killed after seq {seen}; {} events survived",
        events.len()
    );
    assert!(events.len() as i64 >= seen, "committed events were lost");
    assert!(events.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    for i in 0..4 {
        let acct = crash_account(i);
        if store.get_account(&acct.did).await.unwrap().is_none() {
            continue;
        }
        check_consistent(&store, &acct).await;
        let commits = events
            .iter()
            .filter(|e| e.did == acct.did && e.kind == EventKind::Commit)
            .count();
        let root = store.repo_root(&acct.did).await.unwrap().unwrap();
        let revs: std::collections::BTreeSet<String> = {
            let conn = raw(&store);
            let mut stmt = conn
                .prepare("SELECT DISTINCT rev FROM record WHERE did = ?1")
                .unwrap();
            stmt.query_map([acct.did.as_str()], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        assert!(revs.iter().all(|rev| rev.as_str() <= root.rev.as_str()));
        assert!(commits >= 1, "every account has at least its genesis event");
    }
}
