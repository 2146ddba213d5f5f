//! `Store::repo_snapshot` reads with two connections at once: whatever the timing between them
//! (and commits landing meanwhile), a snapshot is one state of the repository, whole.

mod fixture;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use atp_repo::{export_car_from_arena, verify_car};
use pds_store::RepoSnapshot;

use fixture::*;

/// Commits `n` commits of `per` records each.
async fn fill(t: &TestStore, acct: &TestAccount, prefix: &str, n: usize, per: usize) {
    for i in 0..n {
        let writes: Vec<_> = (0..per)
            .map(|j| {
                create_write(
                    "app.bsky.feed.post",
                    &format!("3{prefix}{i:06}{j:04}"),
                    post(&format!("{prefix} {i} {j}"), None),
                )
            })
            .collect();
        write(&t.store, acct, &writes).await.unwrap();
    }
}

/// The snapshot is loaded, its CAR verifies, and it holds every block the store holds for the
/// account at that root (checked by a walk: nothing missing).
async fn check_snapshot(t: &TestStore, acct: &TestAccount) -> atp_data::Cid {
    let Some(RepoSnapshot::Loaded { root, blocks }) =
        t.store.repo_snapshot(&acct.did, usize::MAX).await.unwrap()
    else {
        panic!("not loaded");
    };
    let (car, stats) = export_car_from_arena(&blocks, &root.commit, Vec::new()).unwrap();
    let summary = verify_car(car.as_slice(), Some(&acct.key.public_key())).unwrap();
    assert_eq!(summary.commit, root.commit);
    assert_eq!(stats.bytes, car.len() as u64);
    root.commit
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshots_taken_while_commits_land_are_whole() {
    let t = Arc::new(open_store());
    let (acct, other) = (Arc::new(account(1)), Arc::new(account(2)));
    create(&t.store, &acct, None).await;
    create(&t.store, &other, None).await;
    // Enough rows that both readers take a share.
    fill(&t, &acct, "a", 20, 100).await;
    let whole = check_snapshot(&t, &acct).await;
    assert_eq!(
        whole,
        t.store.repo_root(&acct.did).await.unwrap().unwrap().commit
    );

    // Commits to the account (and another, between its rows) while snapshots are taken.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (t, stop) = (Arc::clone(&t), Arc::clone(&stop));
        let (acct, other) = (Arc::clone(&acct), Arc::clone(&other));
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                fill(&t, &acct, &format!("w{i}"), 1, 3).await;
                fill(&t, &other, &format!("o{i}"), 1, 5).await;
                i += 1;
            }
            i
        })
    };
    let mut roots = std::collections::BTreeSet::new();
    for _ in 0..40 {
        roots.insert(check_snapshot(&t, &acct).await);
    }
    stop.store(true, Ordering::Relaxed);
    let commits = writer.await.unwrap();
    assert!(commits > 0);
    // Later snapshots saw later states.
    assert!(roots.len() > 1 || commits < 3, "{} roots", roots.len());
    check_snapshot(&t, &acct).await;
    check_snapshot(&t, &other).await;
}
