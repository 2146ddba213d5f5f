//! `Store::repo_snapshot`: the whole repository read at once for a full export, by either read
//! strategy (a rowid range scan when the account's rows are packed, lookups by rowid when they
//! are spread among other accounts' rows), and the size limit.

mod fixture;

use atp_repo::{ArenaExport, export_car, export_car_from_arena, verify_car};
use pds_store::RepoSnapshot;

use fixture::*;

/// Commits `n` single-record commits, one record each, under `prefix`.
async fn posts(t: &TestStore, acct: &TestAccount, prefix: &str, n: usize) {
    for i in 0..n {
        let rkey = format!("3{prefix}{i:010}");
        write(
            &t.store,
            acct,
            &[create_write(
                "app.bsky.feed.post",
                &rkey,
                post(&format!("{prefix} {i}"), None),
            )],
        )
        .await
        .unwrap();
    }
}

/// The snapshot of `acct` is every block of its store, and exports the same CAR as the
/// streamed export, which verifies with its key.
async fn check(t: &TestStore, acct: &TestAccount) {
    let Some(RepoSnapshot::Loaded { root, blocks }) =
        t.store.repo_snapshot(&acct.did, usize::MAX).await.unwrap()
    else {
        panic!("{}: not loaded", acct.did);
    };
    let store = t.store.block_store(&acct.did);
    assert_eq!(blocks.len() as u64, store.count().await.unwrap());
    assert_eq!(root, t.store.repo_root(&acct.did).await.unwrap().unwrap());
    let (streamed, _) = export_car(&store, &root.commit, Vec::new()).await.unwrap();
    let (from_memory, stats) = export_car_from_arena(&blocks, &root.commit, Vec::new()).unwrap();
    assert_eq!(from_memory, streamed, "{}", acct.did);
    assert_eq!(stats.bytes, from_memory.len() as u64);
    let summary = verify_car(from_memory.as_slice(), Some(&acct.key.public_key())).unwrap();
    assert_eq!(summary.commit, root.commit);
    // Every block found is the stored one.
    let plan = ArenaExport::plan(&blocks, &root.commit).unwrap();
    assert_eq!(plan.stats().blocks, blocks.len() as u64);
}

#[tokio::test]
async fn snapshots_every_block_by_either_strategy() {
    let t = open_store();
    let (packed, spread, busy) = (account(1), account(2), account(3));
    for acct in [&packed, &spread, &busy] {
        create(&t.store, acct, None).await;
    }
    // `packed` writes alone: its rows are contiguous (range scan).
    posts(&t, &packed, "p", 30).await;
    // `spread` writes between many writes of `busy`: its rows are far apart (rowid lookups),
    // and `busy`'s are packed with a few of `spread`'s among them.
    for round in 0..10 {
        posts(&t, &spread, &format!("s{round}"), 1).await;
        posts(&t, &busy, &format!("b{round}"), 8).await;
    }
    for acct in [&packed, &spread, &busy] {
        check(&t, acct).await;
    }

    // Over the limit: the root only.
    let root = t.store.repo_root(&busy.did).await.unwrap().unwrap();
    match t.store.repo_snapshot(&busy.did, 1000).await.unwrap() {
        Some(RepoSnapshot::TooLarge { root: r }) => assert_eq!(r, root),
        other => panic!("{other:?}"),
    }
    let nobody = account(9);
    assert!(
        t.store
            .repo_snapshot(&nobody.did, usize::MAX)
            .await
            .unwrap()
            .is_none()
    );
}
