//! `pds lexicon validate` end to end: the real binary over the Lexicon vectors (every valid record
//! exits 0 with `valid`; every invalid case of `atp-lexicon`'s own list exits 1 naming the field's
//! path), the vendored `lexicons/` tree, and the usage errors (exit 2).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

const CATALOG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/vectors/lexicon/catalog"
);
const LEXICONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../lexicons");

fn read_cases(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let cases: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    cases.as_array().expect("an array of cases").clone()
}

/// Runs `pds lexicon validate --lexicons <dir> --type <t> -` with `record` on stdin.
fn validate(dir: &str, type_name: &str, record: &Value) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pds"))
        .args([
            "lexicon",
            "validate",
            "--lexicons",
            dir,
            "--type",
            type_name,
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the pds binary runs");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(record.to_string().as_bytes())
        .expect("stdin takes the record");
    child.wait_with_output().expect("the pds binary finishes")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn valid_vectors_exit_0() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/vectors/lexicon/record-data-valid.json"
    );
    for (i, case) in read_cases(path).iter().enumerate() {
        let out = validate(CATALOG, "example.lexicon.record", &case["data"]);
        assert_eq!(
            (out.status.code(), stdout(&out).as_str()),
            (Some(0), "valid\n"),
            "record-data-valid.json case {i} ({}): {}",
            case["name"],
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn invalid_cases_exit_1_naming_the_path() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../atp-lexicon/tests/record-data-invalid.json"
    );
    let cases = read_cases(path);
    assert!(cases.len() >= 40);
    for (i, case) in cases.iter().enumerate() {
        let out = validate(CATALOG, "example.lexicon.record", &case["data"]);
        // The field's path, or a path inside it (`Record/union/$type` for data-model errors).
        let want = format!("invalid: {}", case["path"].as_str().expect("a path"));
        let got = stdout(&out);
        assert_eq!(
            out.status.code(),
            Some(1),
            "case {i} ({}): {got}",
            case["name"]
        );
        assert!(got.starts_with(&want), "case {i} ({}): {got}", case["name"]);
    }
}

#[test]
fn vendored_lexicons_and_other_definitions() {
    let post =
        json!({"$type": "app.bsky.feed.post", "text": "hi", "createdAt": "2024-01-01T00:00:00Z"});
    let out = validate(LEXICONS, "app.bsky.feed.post", &post);
    assert_eq!(
        (out.status.code(), stdout(&out).as_str()),
        (Some(0), "valid\n")
    );
    let long = json!({"$type": "app.bsky.feed.post", "text": "x".repeat(301), "createdAt": "2024-01-01T00:00:00Z"});
    let out = validate(LEXICONS, "app.bsky.feed.post", &long);
    assert_eq!(
        (out.status.code(), stdout(&out).as_str()),
        (
            Some(1),
            "invalid: Record/text: must not be longer than 300 graphemes\n"
        )
    );
    // A float is not atproto data.
    let float = json!({"$type": "app.bsky.feed.post", "text": "hi", "createdAt": "2024-01-01T00:00:00Z", "n": 1.5});
    let out = validate(LEXICONS, "app.bsky.feed.post", &float);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    // Any definition, not only records.
    let ratio = json!({"width": 0, "height": 1});
    let out = validate(LEXICONS, "app.bsky.embed.defs#aspectRatio", &ratio);
    assert_eq!(
        (out.status.code(), stdout(&out).as_str()),
        (Some(1), "invalid: Value/width: can not be less than 1\n")
    );
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pds"))
        .args(args)
        .output()
        .expect("the pds binary runs")
}

#[test]
fn usage_and_io_errors_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = |name: &str, text: &str| -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path
    };
    let good = file(
        "good.json",
        r#"{"$type": "example.lexicon.record", "integer": 1}"#,
    );
    let not_json = file("bad.json", "{not json");
    let path = |p: &Path| p.to_str().expect("utf-8").to_owned();
    let base = ["lexicon", "validate", "--lexicons"];
    // A file argument (not stdin) works.
    let out = run(&[
        &base[..],
        &[CATALOG, "--type", "example.lexicon.record", &path(&good)],
    ]
    .concat());
    assert_eq!(
        (out.status.code(), stdout(&out).as_str()),
        (Some(0), "valid\n")
    );
    let cases: Vec<Vec<String>> = vec![
        vec![
            "/nonexistent/dir".into(),
            "--type".into(),
            "example.lexicon.record".into(),
            path(&good),
        ],
        vec![
            CATALOG.into(),
            "--type".into(),
            "example.lexicon.nope".into(),
            path(&good),
        ],
        vec![
            CATALOG.into(),
            "--type".into(),
            "example.lexicon.record".into(),
            path(&not_json),
        ],
        vec![
            CATALOG.into(),
            "--type".into(),
            "example.lexicon.record".into(),
            path(&dir.path().join("missing.json")),
        ],
    ];
    for case in cases {
        let args: Vec<&str> = base
            .iter()
            .copied()
            .chain(case.iter().map(String::as_str))
            .collect();
        let out = run(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{case:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A directory holding an invalid schema is a usage error too.
    let schemas = tempfile::tempdir().expect("tempdir");
    std::fs::write(schemas.path().join("x.json"), r#"{"lexicon": 1, "id": "a.b.c", "defs": {"x": {"type": "record", "record": {"type": "object"}}}}"#)
        .expect("write");
    let out = run(&[
        &base[..],
        &[&path(schemas.path()), "--type", "a.b.c", &path(&good)],
    ]
    .concat());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be named \"main\""));
}
