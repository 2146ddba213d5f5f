//! `pds repo inspect | verify | export-json` through the real binary, on the repository CAR
//! vectors and on broken copies of them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use atp_data::car::CarReader;
use atp_data::{Cid, Value};
use atp_repo::{BlockMap, Mst, SignedCommit};

const TESTDATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/vectors/extra/indigo/testing/testdata/"
);
/// The legacy key that signed greenground.repo.car and divy.repo (see tests/vectors/INDEX.md).
const KEY: &str = "did:key:zQ3shXjHeiBuRCKmM36cuYnm7YEMzhGnCmCyW92sRJ9pribSF";

/// Some other valid k256 did:key.
fn other_key() -> String {
    atp_crypto::Keypair::from_private_bytes(atp_crypto::Curve::K256, &[5u8; 32])
        .unwrap()
        .did_key()
}

fn vector(name: &str) -> PathBuf {
    Path::new(TESTDATA).join(name)
}

fn pds(args: &[&str], file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pds"))
        .arg("repo")
        .args(&args[..1])
        .arg(file)
        .args(&args[1..])
        .output()
        .expect("run pds")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `pds repo <cmd> <file> [extra]`, asserting the exit code; returns stdout and stderr.
fn expect(args: &[&str], file: &Path, code: i32) -> (String, String) {
    let out = pds(args, file);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(code),
        "pds repo {args:?} {}:\nstdout:\n{stdout}\nstderr:\n{stderr}",
        file.display()
    );
    (stdout, stderr)
}

fn read_car(path: &Path) -> (Cid, BlockMap) {
    let bytes = std::fs::read(path).unwrap();
    let reader = CarReader::new(bytes.as_slice()).unwrap();
    let root = reader.roots()[0];
    (root, reader.collect::<Result<_, _>>().unwrap())
}

#[test]
fn inspect_greenground_with_key() {
    let path = vector("greenground.repo.car");
    let (root, blocks) = read_car(&path);
    let commit = SignedCommit::from_cbor(&blocks[&root]).unwrap();
    let (stdout, _) = expect(&["inspect", "--key", KEY], &path, 0);
    for line in [
        format!("did: {}\n", commit.did()),
        "version: 3\n".to_owned(),
        "rev: 3k67up3j7hf2x\n".to_owned(),
        format!("commit: {root}\n"),
        format!("data: {}\n", commit.data()),
        format!("signature: valid ({KEY})\n"),
        "records: 2\n".to_owned(),
        "  app.bsky.graph.follow: 2\n".to_owned(),
        "blocks: 4\n".to_owned(),
    ] {
        assert!(stdout.contains(&line), "missing {line:?} in\n{stdout}");
    }
    let (stdout, _) = expect(&["inspect"], &path, 0);
    assert!(stdout.contains("signature: not checked"), "{stdout}");
}

#[test]
fn verify_the_vectors() {
    let (stdout, _) = expect(
        &["verify", "--key", KEY],
        &vector("greenground.repo.car"),
        0,
    );
    assert!(stdout.starts_with("valid: "), "{stdout}");
    assert!(stdout.contains("2 records, signature valid"), "{stdout}");

    let divy = vector("divy.repo");
    let (stdout, _) = expect(&["verify", "--key", KEY], &divy, 0);
    assert!(stdout.contains(" rev none "), "v2 commit: {stdout}");
    assert!(stdout.contains("6 records, signature valid"), "{stdout}");
    let (stdout, _) = expect(&["inspect", "--key", KEY], &divy, 0);
    assert!(stdout.contains("version: 2\n"), "{stdout}");
    assert!(
        stdout.contains("  app.bsky.system.declaration: 1\n"),
        "{stdout}"
    );

    let (stdout, stderr) = expect(&["verify"], &vector("repo_slice.car"), 1);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.starts_with("invalid: missing block "), "{stderr}");
}

#[test]
fn broken_copies_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let path = vector("greenground.repo.car");
    let (_, blocks) = read_car(&path);

    // Flip the last byte: the last block no longer matches its CID.
    let mut bytes = std::fs::read(&path).unwrap();
    let last_cid = CarReader::new(bytes.as_slice())
        .unwrap()
        .last()
        .unwrap()
        .unwrap()
        .0;
    assert!(blocks.contains_key(&last_cid));
    let end = bytes.len() - 1;
    bytes[end] ^= 0x01;
    let flipped = dir.path().join("flipped.car");
    std::fs::write(&flipped, &bytes).unwrap();
    for cmd in ["verify", "inspect", "export-json"] {
        let (_, stderr) = expect(&[cmd], &flipped, 1);
        assert_eq!(
            stderr,
            format!("invalid: hash mismatch: block bytes do not match CID {last_cid}\n"),
            "{cmd}"
        );
    }

    let (_, stderr) = expect(&["verify", "--key", &other_key()], &path, 1);
    assert!(
        stderr.starts_with("invalid: bad signature on commit "),
        "{stderr}"
    );

    let truncated = dir.path().join("truncated.car");
    std::fs::write(&truncated, &std::fs::read(&path).unwrap()[..300]).unwrap();
    let (_, stderr) = expect(&["verify"], &truncated, 1);
    assert!(
        stderr.starts_with("invalid: invalid CAR: truncated"),
        "{stderr}"
    );
}

#[test]
fn operational_errors_exit_2() {
    let missing = Path::new("/nonexistent/repo.car");
    let (_, stderr) = expect(&["verify"], missing, 2);
    assert!(stderr.contains("cannot open"), "{stderr}");
    let (_, stderr) = expect(
        &["verify", "--key", "did:key:nope"],
        &vector("divy.repo"),
        2,
    );
    assert!(stderr.contains("invalid --key"), "{stderr}");
}

#[test]
fn export_json_lines() {
    for name in ["greenground.repo.car", "divy.repo"] {
        let path = vector(name);
        let (root, blocks) = read_car(&path);
        let commit = SignedCommit::from_cbor(&blocks[&root]).unwrap();
        let leaves = Mst::load(*commit.data()).leaves_from(&blocks).unwrap();
        let (stdout, _) = expect(&["export-json"], &path, 0);
        let lines: Vec<serde_json::Value> = stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), leaves.len(), "{name}");
        for (line, leaf) in lines.iter().zip(&leaves) {
            let value = atp_data::cbor::from_slice(&blocks[&leaf.value]).unwrap();
            assert!(matches!(value, Value::Map(_)));
            let expected = serde_json::json!({
                "uri": format!("at://{}/{}", commit.did(), leaf.key),
                "cid": leaf.value.to_string(),
                "value": atp_data::json::to_json(&value),
            });
            assert_eq!(line, &expected, "{name}");
        }
    }
    let (_, stderr) = expect(&["export-json"], &vector("repo_slice.car"), 1);
    assert!(stderr.starts_with("invalid: missing block"), "{stderr}");
}
