//! Conformance against the shared atproto vectors (tests/vectors, see INDEX.md there) and
//! bad-input checks derived from them.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use atp_data::car::{CarError, CarReader, CarWriter};
use atp_data::cbor::{self, DecodeError};
use atp_data::cid::{self, DAG_CBOR};
use atp_data::json::{from_json, record_from_json, to_json};
use atp_data::{Cid, Value, blob};
use data_encoding::BASE64_NOPAD;

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/vectors/");
const INDIGO: &str = "extra/indigo/testing/testdata/";
const CAR_VECTORS: [&str; 3] = ["greenground.repo.car", "divy.repo", "repo_slice.car"];

fn path(rel: &str) -> PathBuf {
    Path::new(VECTORS).join(rel)
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn read_json(rel: &str) -> serde_json::Value {
    serde_json::from_slice(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn entries<'a>(rel: &str, json: &'a serde_json::Value) -> &'a Vec<serde_json::Value> {
    json.as_array()
        .unwrap_or_else(|| panic!("{rel}: expected a JSON array"))
}

// ---------------------------------------------------------------------------------------------
// data-model/

/// One `{json, cbor_base64, cid}` fixture: JSON → CBOR byte-identical, CBOR → JSON equal, CID equal.
fn check_fixture(file: &str, index: usize, fixture: &serde_json::Value) {
    let at = format!("{file}[{index}]");
    let expected_cbor = BASE64_NOPAD
        .decode(fixture["cbor_base64"].as_str().unwrap().as_bytes())
        .unwrap_or_else(|e| panic!("{at}: cbor_base64: {e}"));
    let value = record_from_json(&fixture["json"]).unwrap_or_else(|e| panic!("{at}: {e}"));
    let encoded = cbor::to_vec(&value);
    assert_eq!(encoded, expected_cbor, "{at}: JSON → DAG-CBOR differs");

    let decoded = cbor::from_slice(&expected_cbor).unwrap_or_else(|e| panic!("{at}: {e}"));
    assert_eq!(
        decoded, value,
        "{at}: decoded CBOR differs from the JSON value"
    );
    assert_eq!(
        to_json(&decoded),
        fixture["json"],
        "{at}: CBOR → JSON differs"
    );

    let expected_cid = fixture["cid"].as_str().unwrap();
    assert_eq!(
        cid::cid_for_cbor(&encoded).to_string(),
        expected_cid,
        "{at}: CID"
    );
    assert_eq!(
        cid::parse(expected_cid).unwrap().to_string(),
        expected_cid,
        "{at}: CID parse"
    );
}

#[test]
fn data_model_fixtures() {
    let file = "data-model/data-model-fixtures.json";
    let json = read_json(file);
    let fixtures = entries(file, &json);
    assert!(!fixtures.is_empty(), "{file}: no fixtures");
    for (i, fixture) in fixtures.iter().enumerate() {
        check_fixture(file, i, fixture);
    }
}

/// One `{note, json}` entry: parsing it as a record must succeed (`valid`) or fail.
fn check_validity(file: &str, index: usize, entry: &serde_json::Value, valid: bool) {
    let note = entry["note"].as_str().unwrap_or("?");
    let result = record_from_json(&entry["json"]);
    match (valid, result) {
        (true, Ok(value)) => {
            // Valid data must survive both wire forms.
            let bytes = cbor::to_vec(&value);
            assert_eq!(
                cbor::from_slice(&bytes).unwrap(),
                value,
                "{file}[{index}] ({note})"
            );
            assert_eq!(
                from_json(&to_json(&value)).unwrap(),
                value,
                "{file}[{index}] ({note})"
            );
        }
        (true, Err(e)) => panic!("{file}[{index}] ({note}): refused: {e}"),
        (false, Ok(v)) => panic!("{file}[{index}] ({note}): accepted as {v:?}"),
        (false, Err(_)) => {}
    }
}

#[test]
fn data_model_valid() {
    let file = "data-model/data-model-valid.json";
    let json = read_json(file);
    for (i, entry) in entries(file, &json).iter().enumerate() {
        check_validity(file, i, entry, true);
    }
}

#[test]
fn data_model_invalid() {
    let file = "data-model/data-model-invalid.json";
    let json = read_json(file);
    for (i, entry) in entries(file, &json).iter().enumerate() {
        check_validity(file, i, entry, false);
    }
}

#[test]
fn feedpost_record_round_trips() {
    let file = format!("{INDIGO}feedpost_record.cbor");
    let bytes = read(&file);
    let value = cbor::from_slice(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!(cbor::to_vec(&value), bytes, "{file}: re-encoding differs");
    assert_eq!(
        cid::cid_for_cbor(&bytes).to_string(),
        "bafyreigopc2xg7ayxvsvwg3vobbraqfxe4c2bhil4ow6fkv74tzrr66qcq",
        "{file}: CID"
    );
    assert_eq!(value.type_name(), Some("app.bsky.feed.post"), "{file}");
    assert_eq!(
        value.get("text").and_then(Value::as_str),
        Some("Who the hell do you think you are"),
        "{file}"
    );
    assert_eq!(
        from_json(&to_json(&value)).unwrap(),
        value,
        "{file}: JSON round trip"
    );
}

// ---------------------------------------------------------------------------------------------
// CAR files

/// A fully read CAR: roots and blocks in stream order.
struct ReadCar {
    roots: Vec<Cid>,
    blocks: Vec<(Cid, Vec<u8>)>,
}

impl ReadCar {
    fn map(&self) -> HashMap<Cid, &[u8]> {
        self.blocks
            .iter()
            .map(|(c, d)| (*c, d.as_slice()))
            .collect()
    }
}

/// Reads a CAR (every hash checked by the reader), requires the roots to be present, decodes every
/// dag-cbor block strictly and checks that it re-encodes to the same bytes, and that our writer
/// reproduces the file byte for byte.
fn check_car(name: &str, bytes: &[u8]) -> ReadCar {
    let reader = CarReader::new(bytes).unwrap_or_else(|e| panic!("{name}: header: {e}"));
    let roots = reader.roots().to_vec();
    let blocks: Vec<(Cid, Vec<u8>)> = reader
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(!roots.is_empty(), "{name}: no roots");
    assert!(!blocks.is_empty(), "{name}: no blocks");
    for root in &roots {
        assert!(
            blocks.iter().any(|(c, _)| c == root),
            "{name}: root {root} missing"
        );
    }
    for (i, (cid, data)) in blocks.iter().enumerate() {
        assert!(cid::matches(cid, data), "{name}: block {i} {cid}");
        cid::check_blessed(cid).unwrap_or_else(|e| panic!("{name}: block {i}: {e}"));
        if cid.codec() == DAG_CBOR {
            let value =
                cbor::from_slice(data).unwrap_or_else(|e| panic!("{name}: block {i} {cid}: {e}"));
            assert_eq!(
                &cbor::to_vec(&value),
                data,
                "{name}: block {i} {cid} re-encoding"
            );
        }
    }
    let mut writer = CarWriter::new(Vec::new(), &roots).unwrap();
    for (cid, data) in &blocks {
        writer.write_block(cid, data).unwrap();
    }
    assert_eq!(
        writer.finish().unwrap(),
        bytes,
        "{name}: writer output differs"
    );
    ReadCar { roots, blocks }
}

#[test]
fn car_vectors() {
    for name in CAR_VECTORS {
        let file = format!("{INDIGO}{name}");
        let car = check_car(&file, &read(&file));
        assert_eq!(car.roots.len(), 1, "{file}: roots");
    }
}

/// Collects `key → value CID` from every MST node reachable from `node` and present in `blocks`
/// (a partial CAR only holds the path to some keys).
fn walk_mst(name: &str, blocks: &HashMap<Cid, &[u8]>, node: &Cid, out: &mut BTreeMap<String, Cid>) {
    let Some(bytes) = blocks.get(node) else {
        return;
    };
    let value = cbor::from_slice(bytes).unwrap_or_else(|e| panic!("{name}: MST node {node}: {e}"));
    if let Some(Value::Link(left)) = value.get("l") {
        walk_mst(name, blocks, left, out);
    }
    let mut key: Vec<u8> = Vec::new();
    for entry in value.get("e").and_then(Value::as_array).unwrap_or_default() {
        let prefix = entry.get("p").and_then(Value::as_i64).unwrap() as usize;
        key.truncate(prefix);
        key.extend_from_slice(entry.get("k").and_then(Value::as_bytes).unwrap());
        let leaf = entry.get("v").and_then(Value::as_link).unwrap();
        out.insert(String::from_utf8(key.clone()).unwrap(), *leaf);
        if let Some(Value::Link(right)) = entry.get("t") {
            walk_mst(name, blocks, right, out);
        }
    }
}

#[test]
fn repo_slice_record() {
    let file = format!("{INDIGO}repo_slice.car");
    let car = check_car(&file, &read(&file));
    let blocks = car.map();
    let expected = read_json(&format!("{INDIGO}repo_slice_record.json"));

    let commit = cbor::from_slice(blocks[&car.roots[0]]).unwrap();
    let data = commit
        .get("data")
        .and_then(Value::as_link)
        .expect("commit.data");
    let mut keys = BTreeMap::new();
    walk_mst(&file, &blocks, data, &mut keys);
    let record_cid = keys
        .get("app.bsky.feed.post/3jquh3emtzo2o")
        .unwrap_or_else(|| panic!("{file}: key not found in {:?}", keys.keys()));
    assert_eq!(
        record_cid.to_string(),
        expected["cid"].as_str().unwrap(),
        "{file}: record CID"
    );

    let record = cbor::from_slice(blocks[record_cid]).unwrap();
    assert_eq!(to_json(&record), expected["value"], "{file}: record value");
    assert_eq!(
        record_from_json(&expected["value"]).unwrap(),
        record,
        "{file}: JSON → value"
    );
    let blobs = blob::collect(&record);
    assert_eq!(blobs.len(), 1, "{file}: blobs");
    assert!(blobs[0].legacy, "{file}: legacy blob");
    assert_eq!(
        blobs[0].cid.to_string(),
        "bafkreiblkobl6arfg3j7eft3akdhn2hmr2qmzfkefcgu4agnswvssg4a6a"
    );
}

/// One firehose frame body (atproto JSON): its `blocks` bytes must be a CAR whose root is `commit`.
fn check_frame_blocks(name: &str, body: &serde_json::Value) {
    let body = from_json(body).unwrap_or_else(|e| panic!("{name}: {e}"));
    let Some(blocks) = body.get("blocks") else {
        return;
    };
    let bytes = blocks
        .as_bytes()
        .unwrap_or_else(|| panic!("{name}: blocks is not bytes"));
    let car = check_car(name, bytes);
    if let Some(commit) = body.get("commit") {
        let commit = commit
            .as_link()
            .unwrap_or_else(|| panic!("{name}: commit is not a link"));
        assert_eq!(car.roots, [*commit], "{name}: CAR root vs commit");
    }
}

fn json_files(dir: &str, prefix: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(path(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix) && n.ends_with(".json"))
        .map(|n| format!("{dir}{n}"))
        .collect();
    files.sort();
    files
}

#[test]
fn firehose_commit_blocks() {
    let files = json_files("extra/indigo/atproto/repo/testdata/", "firehose_commit_");
    assert_eq!(files.len(), 2, "{files:?}");
    for file in files {
        check_frame_blocks(&file, &read_json(&file));
    }
}

#[test]
fn relay_frame_blocks() {
    let files = json_files("extra/indigo/cmd/relay/testing/testdata/", "");
    assert!(!files.is_empty());
    let mut checked = 0;
    for file in files {
        let json = read_json(&file);
        let messages = json["messages"]
            .as_array()
            .unwrap_or_else(|| panic!("{file}: messages"));
        for (i, message) in messages.iter().enumerate() {
            let body = &message["frame"]["body"];
            check_frame_blocks(&format!("{file} messages[{i}]"), body);
            checked += usize::from(body.get("blocks").is_some());
        }
    }
    assert!(checked >= 10, "only {checked} frames with blocks");
}

// ---------------------------------------------------------------------------------------------
// Bad input derived from the vectors

#[test]
fn truncated_cars_fail_without_panicking() {
    for name in CAR_VECTORS {
        let file = format!("{INDIGO}{name}");
        let bytes = read(&file);
        let car = check_car(&file, &bytes);
        // Section boundaries: a cut there leaves a shorter, valid CAR.
        let mut writer = CarWriter::new(Vec::new(), &car.roots).unwrap();
        let mut boundaries = vec![writer.bytes_written()];
        for (cid, data) in &car.blocks {
            writer.write_block(cid, data).unwrap();
            boundaries.push(writer.bytes_written());
        }
        for len in 0..bytes.len() {
            let result =
                CarReader::new(&bytes[..len]).and_then(|r| r.collect::<Result<Vec<_>, _>>());
            let at_boundary = boundaries.contains(&(len as u64));
            match result {
                Ok(_) => assert!(at_boundary, "{file}: prefix of {len} bytes accepted"),
                Err(CarError::Truncated { .. }) => assert!(!at_boundary, "{file}: prefix {len}"),
                Err(e) => panic!("{file}: prefix of {len} bytes: expected Truncated, got {e}"),
            }
        }
    }
}

#[test]
fn flipped_block_byte_is_a_hash_mismatch() {
    for name in CAR_VECTORS {
        let file = format!("{INDIGO}{name}");
        let bytes = read(&file);
        let car = check_car(&file, &bytes);
        let mut end = CarWriter::new(Vec::new(), &car.roots)
            .unwrap()
            .bytes_written() as usize;
        for (i, (cid, data)) in car.blocks.iter().enumerate() {
            end += {
                let mut w = CarWriter::new(Vec::new(), &[]).unwrap();
                let before = w.bytes_written();
                w.write_block(cid, data).unwrap();
                (w.bytes_written() - before) as usize
            };
            let mut corrupt = bytes.clone();
            corrupt[end - data.len() / 2 - 1] ^= 0x40;
            let err = CarReader::new(corrupt.as_slice())
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .expect_err("corruption accepted");
            match err {
                CarError::HashMismatch { cid: bad } => assert_eq!(bad, *cid, "{file}: block {i}"),
                other => panic!("{file}: block {i}: expected HashMismatch, got {other}"),
            }
        }
    }
}

/// Encodes a map by hand, with keys and values in the given order.
fn raw_map(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = vec![0xa0 | entries.len() as u8];
    for (k, v) in entries {
        out.push(0x60 | k.len() as u8);
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(v);
    }
    out
}

#[test]
fn non_canonical_cbor_is_refused() {
    type Check = fn(&DecodeError) -> bool;
    let cases: Vec<(&str, Vec<u8>, Check)> = vec![
        (
            "longer key first",
            raw_map(&[("$type", &[0x01]), ("text", &[0x02])]),
            |e| matches!(e, DecodeError::KeyOrder { offset: 8, .. }),
        ),
        (
            "bytewise unsorted",
            raw_map(&[("b", &[0x01]), ("a", &[0x02])]),
            |e| matches!(e, DecodeError::KeyOrder { .. }),
        ),
        (
            "duplicate key",
            raw_map(&[("a", &[0x01]), ("a", &[0x02])]),
            |e| matches!(e, DecodeError::DuplicateKey { offset: 4, .. }),
        ),
        ("non-minimal int", raw_map(&[("a", &[0x18, 0x05])]), |e| {
            matches!(e, DecodeError::NonMinimal { offset: 3 })
        }),
        ("non-minimal length", vec![0x78, 0x01, b'a'], |e| {
            matches!(e, DecodeError::NonMinimal { offset: 0 })
        }),
        ("non-minimal tag", vec![0xd9, 0x00, 0x2a, 0x41, 0x00], |e| {
            matches!(e, DecodeError::NonMinimal { offset: 0 })
        }),
        ("indefinite array", vec![0x9f, 0x01, 0xff], |e| {
            matches!(e, DecodeError::IndefiniteLength { offset: 0 })
        }),
        ("indefinite map", vec![0xbf, 0xff], |e| {
            matches!(e, DecodeError::IndefiniteLength { .. })
        }),
        ("indefinite text", vec![0x7f, 0x61, b'a', 0xff], |e| {
            matches!(e, DecodeError::IndefiniteLength { .. })
        }),
        ("half float", raw_map(&[("a", &[0xf9, 0x3c, 0x00])]), |e| {
            matches!(e, DecodeError::Float { offset: 3 })
        }),
        ("single float", vec![0xfa, 0x3f, 0x80, 0, 0], |e| {
            matches!(e, DecodeError::Float { .. })
        }),
        (
            "double float",
            vec![0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0],
            |e| matches!(e, DecodeError::Float { .. }),
        ),
        ("undefined", vec![0xf7], |e| {
            matches!(e, DecodeError::UnsupportedSimple { .. })
        }),
        ("byte key", vec![0xa1, 0x41, b'a', 0x01], |e| {
            matches!(e, DecodeError::NonStringKey { .. })
        }),
        ("tag 0", vec![0xc0, 0x60], |e| {
            matches!(e, DecodeError::UnsupportedTag { tag: 0, .. })
        }),
        ("trailing", vec![0xf6, 0xf6], |e| {
            matches!(e, DecodeError::TrailingBytes { .. })
        }),
        (
            "u64 above i64",
            vec![0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            |e| matches!(e, DecodeError::IntegerOutOfRange { .. }),
        ),
    ];
    for (name, bytes, check) in cases {
        let err = cbor::from_slice(&bytes).expect_err(name);
        assert!(check(&err), "{name}: unexpected error {err:?}");
    }
}

#[test]
fn mutated_feedpost_is_refused_or_canonical() {
    // Any single-byte change either fails strictly or yields a value that re-encodes to the
    // mutated bytes: the decoder never accepts a non-canonical form.
    let bytes = read(&format!("{INDIGO}feedpost_record.cbor"));
    for i in 0..bytes.len() {
        for flip in [0x01, 0x20, 0x80] {
            let mut mutated = bytes.clone();
            mutated[i] ^= flip;
            if let Ok(value) = cbor::from_slice(&mutated) {
                assert_eq!(cbor::to_vec(&value), mutated, "byte {i} ^ {flip:#x}");
            }
        }
    }
}
