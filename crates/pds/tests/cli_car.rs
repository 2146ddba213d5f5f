//! `pds car inspect` on the CAR vectors and on broken copies, through the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use atp_data::car::CarReader;

const TESTDATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/vectors/extra/indigo/testing/testdata/"
);
const CAR_VECTORS: [&str; 3] = ["greenground.repo.car", "divy.repo", "repo_slice.car"];

fn vector(name: &str) -> PathBuf {
    Path::new(TESTDATA).join(name)
}

fn inspect(path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pds"))
        .args(["car", "inspect"])
        .arg(path)
        .output()
        .expect("run pds")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn inspects_the_vectors() {
    for name in CAR_VECTORS {
        let path = vector(name);
        let bytes = std::fs::read(&path).unwrap();
        let reader = CarReader::new(bytes.as_slice()).unwrap();
        let roots = reader.roots().to_vec();
        let blocks: Vec<_> = reader.collect::<Result<_, _>>().unwrap();
        let block_bytes: usize = blocks.iter().map(|(_, d)| d.len()).sum();

        let out = inspect(&path);
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out.stderr));
        assert!(
            stdout.contains(&format!("  {}\n", roots[0])),
            "{name}: root in\n{stdout}"
        );
        assert!(
            stdout.contains(&format!("blocks: {}\n", blocks.len())),
            "{name}:\n{stdout}"
        );
        assert!(
            stdout.contains(&format!("total bytes: {}\n", bytes.len())),
            "{name}:\n{stdout}"
        );
        assert!(
            stdout.contains(&format!(" total {block_bytes}\n")),
            "{name}:\n{stdout}"
        );
        assert!(stdout.contains("codec dag-cbor: "), "{name}:\n{stdout}");
    }
    let out = inspect(&vector("greenground.repo.car"));
    assert!(
        text(&out.stdout).contains("blocks: 4\n"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn corrupted_copy_names_the_cid() {
    let path = vector("greenground.repo.car");
    let mut bytes = std::fs::read(&path).unwrap();
    let last_cid = CarReader::new(bytes.as_slice())
        .unwrap()
        .last()
        .unwrap()
        .unwrap()
        .0;
    let end = bytes.len() - 1;
    bytes[end] ^= 0x01;
    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("corrupt.car");
    std::fs::write(&corrupt, &bytes).unwrap();

    let out = inspect(&corrupt);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("hash mismatch"), "{stderr}");
    assert!(stderr.contains(&last_cid.to_string()), "{stderr}");

    let truncated = dir.path().join("truncated.car");
    std::fs::write(&truncated, &bytes[..bytes.len() - 10]).unwrap();
    let out = inspect(&truncated);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("truncated"), "{stderr}");
}

#[test]
fn unreadable_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = inspect(&dir.path().join("missing.car"));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("missing.car"));
}
