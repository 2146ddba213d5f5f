//! Performance smoke test (ignored by default; run in release):
//! `cargo test --release -p atp-repo --test perf -- --ignored --nocapture`.
//!
//! Target: 100k random-key inserts, the root CID and a signed commit in under a second.

use std::time::Instant;

use atp_crypto::{Curve, Keypair};
use atp_repo::{MemoryBlockStore, Mst, UnsignedCommit, format_genesis};
use atp_syntax::{Nsid, RecordKey, Tid};

fn random_rkeys(n: usize) -> Vec<String> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            Tid::from_u64(state >> 1).to_string()
        })
        .collect()
}

#[tokio::test]
#[ignore = "timing; run in release"]
async fn hundred_thousand_inserts() {
    let n = 100_000;
    let rkeys = random_rkeys(n);
    let value = atp_data::cid::cid_for_cbor(b"\xa0");
    let key = Keypair::from_private_bytes(Curve::K256, &[3u8; 32]).unwrap();
    let did = "did:plc:44ybard66vv44zksje25o7dz".parse().unwrap();
    let rev: Tid = "3lmxjza3nva27".parse().unwrap();

    let store = MemoryBlockStore::new();
    let start = Instant::now();
    let mut tree = Mst::empty();
    for rkey in &rkeys {
        let key = format!("app.bsky.feed.post/{rkey}");
        tree.insert_mut(&store, &key, value).await.unwrap();
    }
    let inserted = start.elapsed();
    let root = tree.root_cid();
    let commit = UnsignedCommit::v3(did, root, rev.clone())
        .sign(&key)
        .unwrap();
    let one_by_one = start.elapsed();
    println!(
        "{n} inserts: {inserted:?}; + root + commit: {one_by_one:?} (commit {})",
        commit.cid()
    );

    let start = Instant::now();
    let mut persistent = Mst::empty();
    for rkey in &rkeys {
        let key = format!("app.bsky.feed.post/{rkey}");
        persistent = persistent.insert(&store, &key, value).await.unwrap().0;
    }
    assert_eq!(persistent.root_cid(), root);
    println!("{n} persistent inserts + root: {:?}", start.elapsed());

    let start = Instant::now();
    let post: Nsid = "app.bsky.feed.post".parse().unwrap();
    let record = atp_data::Value::Map(Default::default());
    let records = rkeys
        .iter()
        .map(|r| {
            (
                post.clone(),
                r.parse::<RecordKey>().unwrap(),
                record.clone(),
            )
        })
        .collect();
    let genesis = format_genesis(
        &"did:plc:44ybard66vv44zksje25o7dz".parse().unwrap(),
        records,
        &key,
        &rev,
    )
    .unwrap();
    let bulk = start.elapsed();
    println!(
        "genesis of {n} records: {bulk:?} ({} blocks)",
        genesis.new_blocks.len()
    );
    assert_eq!(genesis.data, root);
    assert!(one_by_one.as_secs_f64() < 1.0, "too slow: {one_by_one:?}");
}
