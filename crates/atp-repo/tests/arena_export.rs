//! The in-memory export ([`ArenaExport`]) walked on several threads and from several
//! [`ArenaPart`]s: the same CAR, and the same refusal for a broken repository, as one thread
//! over one buffer (and as the streamed export).

mod hand_made;

use std::collections::{BTreeMap, BTreeSet};

use atp_crypto::{Curve, Keypair};
use atp_data::car::CarReader;
use atp_data::cid::cid_for_cbor;
use atp_data::{Cid, Value};
use atp_repo::export::ArenaPart;
use atp_repo::{
    ArenaExport, BlockArena, ExportError, MemoryBlockStore, RepoHead, UnsignedCommit, VerifyError,
    create_repo, export_car, verify_car,
};
use atp_syntax::{Did, Nsid, RecordKey, Tid};
use hand_made::{key_at, node};

fn signer() -> Keypair {
    Keypair::from_private_bytes(Curve::K256, &[9u8; 32]).unwrap()
}

fn did() -> Did {
    "did:plc:44ybard66vv44zksje25o7dz".parse().unwrap()
}

fn record(i: usize) -> Value {
    Value::Map(BTreeMap::from([
        ("$type".to_owned(), Value::from("com.example.thing")),
        ("n".to_owned(), Value::Integer(i as i64)),
    ]))
}

/// `n` records; every seventh repeats an earlier record's content (a shared block).
async fn repo(n: usize) -> (MemoryBlockStore, RepoHead) {
    let records: Vec<(Nsid, RecordKey, Value)> = (0..n)
        .map(|i| {
            let rkey = Tid::from_parts(1_600_000_000_000_000 + i as u64 * 7919, 0);
            let value = record(if i % 7 == 3 { i % 50 } else { i });
            (
                "app.bsky.feed.post".parse().unwrap(),
                rkey.to_string().parse().unwrap(),
                value,
            )
        })
        .collect();
    let store = MemoryBlockStore::new();
    let clock = Tid::from_parts(1_700_000_000_000_000, 1);
    let (head, _) = create_repo(&store, &did(), records, &signer(), &clock)
        .await
        .unwrap();
    (store, head)
}

fn arena_of(blocks: &[(Cid, Vec<u8>)]) -> BlockArena {
    let mut arena = BlockArena::new();
    for (cid, bytes) in blocks {
        arena.insert(cid, bytes);
    }
    arena
}

/// The blocks split over `n` parts, in turn, with the first `repeat` blocks also at the end of
/// the last part (repeats must be ignored).
fn parts_of(blocks: &[(Cid, Vec<u8>)], n: usize, repeat: usize) -> BlockArena {
    let mut parts: Vec<ArenaPart> = (0..n).map(|_| ArenaPart::new()).collect();
    for (i, (cid, bytes)) in blocks.iter().enumerate() {
        assert!(parts[i % n].push_raw(&cid.to_bytes(), bytes));
    }
    for (cid, _) in blocks.iter().take(repeat) {
        parts[n - 1].push_raw(&cid.to_bytes(), b"a repeat: never used");
    }
    BlockArena::from_parts(parts)
}

fn plan_car(arena: &BlockArena, commit: &Cid, threads: usize) -> Result<Vec<u8>, String> {
    let plan = ArenaExport::plan_with_threads(arena, commit, threads).map_err(|e| e.to_string())?;
    let (car, stats) = plan.write(arena, Vec::new()).map_err(|e| e.to_string())?;
    assert_eq!(stats.bytes, car.len() as u64);
    Ok(car)
}

/// The streamed export, checked against the plan's CAR (or error).
fn stream_car(arena: &BlockArena, commit: &Cid, threads: usize) -> Result<Vec<u8>, String> {
    let streamed = ArenaExport::stream_with_threads(arena, commit, threads, Vec::new())
        .map(|(car, stats)| {
            assert_eq!(stats.bytes, car.len() as u64);
            car
        })
        .map_err(|e| e.to_string());
    assert_eq!(
        streamed,
        plan_car(arena, commit, threads),
        "{threads} threads"
    );
    streamed
}

fn blocks_of(car: &[u8]) -> Vec<(Cid, Vec<u8>)> {
    CarReader::new(car)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test]
async fn every_thread_count_and_part_split_gives_the_streamed_car() {
    let (store, head) = repo(2500).await;
    let (streamed, _) = export_car(&store, &head.cid, Vec::new()).await.unwrap();
    let mut seen = BTreeSet::new();
    let want: Vec<(Cid, Vec<u8>)> = blocks_of(&streamed)
        .into_iter()
        .filter(|(c, _)| seen.insert(*c))
        .collect();
    let all: Vec<(Cid, Vec<u8>)> = store.all_blocks().into_iter().collect();
    let one = plan_car(&arena_of(&all), &head.cid, 1).unwrap();
    assert_eq!(blocks_of(&one), want);
    verify_car(one.as_slice(), Some(&signer().public_key())).unwrap();
    for threads in [1, 2, 3, 8] {
        assert_eq!(
            stream_car(&arena_of(&all), &head.cid, threads).unwrap(),
            one,
            "{threads} threads"
        );
    }
    for (n, repeat) in [(2, 0), (2, 300), (3, 50)] {
        let arena = parts_of(&all, n, repeat);
        assert_eq!(arena.len(), all.len());
        assert_eq!(stream_car(&arena, &head.cid, 2).unwrap(), one, "{n} parts");
        assert_eq!(
            ArenaExport::plan(&arena, &head.cid).unwrap().stats().blocks,
            all.len() as u64
        );
    }
}

#[tokio::test]
async fn a_broken_repository_gets_the_same_refusal_on_any_thread_count() {
    let (store, head) = repo(1500).await;
    let all: Vec<(Cid, Vec<u8>)> = store.all_blocks().into_iter().collect();
    let mut checked = 0;
    for (i, (cid, bytes)) in all.iter().enumerate() {
        if *cid == head.cid || i % 23 != 0 {
            continue;
        }
        // Without the block, then with a changed last byte.
        let without: Vec<_> = all.iter().filter(|(c, _)| c != cid).cloned().collect();
        let mut changed = all.clone();
        let mut bad = bytes.clone();
        *bad.last_mut().unwrap() ^= 1;
        changed[i].1 = bad;
        for blocks in [without, changed] {
            let arena = arena_of(&blocks);
            let one = plan_car(&arena, &head.cid, 1);
            for threads in [1, 2, 4] {
                assert_eq!(
                    stream_car(&arena, &head.cid, threads).map(|_| ()),
                    one.clone().map(|_| ()),
                    "block {cid} ({threads} threads)"
                );
            }
            checked += usize::from(one.is_err());
        }
    }
    // Every removal fails, and every changed node (records are not hashed here).
    assert!(checked > all.len() / 23, "{checked}");
}

/// The arena of a signed commit over hand-made nodes (the first is the root) and one record
/// block, and the commit's CID.
fn crafted(nodes: &[(Cid, Vec<u8>)], record: &(Cid, Vec<u8>)) -> (BlockArena, Cid) {
    let clock = Tid::from_parts(1_700_000_000_000_000, 1);
    let commit = UnsignedCommit::v3(did(), nodes[0].0, clock)
        .sign(&signer())
        .unwrap();
    let bytes = commit.to_cbor();
    let cid = cid_for_cbor(&bytes);
    let mut blocks = vec![(cid, bytes)];
    blocks.extend(nodes.iter().cloned());
    blocks.push(record.clone());
    (arena_of(&blocks), cid)
}

#[test]
fn key_order_is_checked_across_subtrees_walked_apart() {
    let rec_bytes = atp_data::cbor::to_vec(&record(1));
    let rec = (cid_for_cbor(&rec_bytes), rec_bytes);
    let v = rec.0;
    let high = key_at(1, 100_000);
    let (a, b) = (key_at(0, 0), key_at(0, 10));
    let (c, d) = (key_at(0, 500_000), key_at(0, 600_000));
    assert!(a < b && b < high && high < c && c < d);

    // Sanity: left subtree below the root's key, right subtree above it.
    let left = node(None, &[(a.as_str(), v, None), (b.as_str(), v, None)]);
    let right = node(None, &[(c.as_str(), v, None), (d.as_str(), v, None)]);
    let root = node(Some(left.0), &[(high.as_str(), v, Some(right.0))]);
    let (arena, commit) = crafted(&[root, left.clone(), right], &rec);
    let one = plan_car(&arena, &commit, 1).unwrap();
    assert_eq!(stream_car(&arena, &commit, 2).unwrap(), one);

    // The right subtree holds keys below the root's key: refused the same way by both.
    let low_right = node(None, &[(a.as_str(), v, None), (d.as_str(), v, None)]);
    let root = node(Some(left.0), &[(high.as_str(), v, Some(low_right.0))]);
    let (arena, commit) = crafted(&[root, left.clone(), low_right.clone()], &rec);
    for threads in [1, 2] {
        let err = ArenaExport::plan_with_threads(&arena, &commit, threads).unwrap_err();
        assert!(
            matches!(&err, ExportError::Repo(VerifyError::BadMstOrder { cid, .. }) if *cid == low_right.0),
            "{threads} threads: {err}"
        );
    }

    // Both subtrees hold the same keys.
    let root = node(Some(left.0), &[(high.as_str(), v, Some(left.0))]);
    let (arena, commit) = crafted(&[root, left.clone()], &rec);
    let one = ArenaExport::plan_with_threads(&arena, &commit, 1)
        .unwrap_err()
        .to_string();
    let two = ArenaExport::plan_with_threads(&arena, &commit, 2)
        .unwrap_err()
        .to_string();
    assert_eq!(one, two);
    assert!(one.contains("bad MST order"), "{one}");
}

/// Times building the lookup table of 126,000 blocks in one part and in two (run with
/// `--ignored --nocapture` in an optimised profile).
#[test]
#[ignore = "timing"]
fn time_lookup_table() {
    use sha2::Digest;
    let blocks: Vec<(Vec<u8>, Vec<u8>)> = (0..126_000u32)
        .map(|i| {
            let bytes = vec![(i % 251) as u8; 100 + (i % 100) as usize];
            let mut cid = vec![0x01, 0x71, 0x12, 0x20];
            cid.extend_from_slice(&sha2::Sha256::digest(i.to_le_bytes()));
            (cid, bytes)
        })
        .collect();
    for parts in [1, 2] {
        let mut best = std::time::Duration::MAX;
        for _ in 0..20 {
            let mut p: Vec<ArenaPart> = (0..parts).map(|_| ArenaPart::new()).collect();
            for (i, (cid, bytes)) in blocks.iter().enumerate() {
                p[i * parts / blocks.len()].push_raw(cid, bytes);
            }
            let arena = BlockArena::from_parts(p);
            let t = std::time::Instant::now();
            assert_eq!(arena.len(), blocks.len());
            best = best.min(t.elapsed());
        }
        println!("{parts} part(s): {best:?}");
    }
}
