//! `pds syntax check` end to end: the real binary, one process per vector line, over every line of
//! every syntax vector file (upstream and the TS reference copies).
//!
//! The CLI gives the full-parse verdict: `*_valid` lines exit 0 and print `valid`; `*_syntax_invalid`
//! and `*_parse_invalid` lines exit 1 with the reason on stderr. (At this level the TS copies agree
//! with upstream on every line; their syntax-versus-parse disagreements are covered in
//! `atp-syntax`'s `tests/interop.rs`.) Line rules from `tests/vectors/INDEX.md`: split on `\n`,
//! skip empty and `#`-first lines, never trim.

use std::io::Write;
use std::process::{Command, Output, Stdio};

const DIRS: [&str; 2] = [
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/vectors/syntax/"),
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/vectors/extra/bluesky-atproto/interop-test-files/syntax/"
    ),
];

/// The `pds syntax check` kind for a vector file's prefix.
fn cli_kind(prefix: &str) -> &'static str {
    match prefix {
        "did" => "did",
        "handle" => "handle",
        "nsid" => "nsid",
        "aturi" => "at-uri",
        "atidentifier" => "at-identifier",
        "recordkey" => "record-key",
        "tid" => "tid",
        "datetime" => "datetime",
        "language" => "language",
        "cid" => "cid",
        "uri" => "uri",
        other => panic!("vector file prefix {other:?} has no CLI kind"),
    }
}

struct VectorFile {
    name: String,
    kind: &'static str,
    valid: bool,
    lines: Vec<(usize, String)>,
}

fn vector_files() -> Vec<VectorFile> {
    let mut files = Vec::new();
    for dir in DIRS {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        for name in names {
            let stem = name.strip_suffix(".txt").expect(".txt file");
            let (prefix, valid) = if let Some(p) = stem.strip_suffix("_syntax_valid") {
                (p, true)
            } else if let Some(p) = stem.strip_suffix("_syntax_invalid") {
                (p, false)
            } else if let Some(p) = stem.strip_suffix("_parse_invalid") {
                (p, false)
            } else {
                panic!("unexpected vector file {name}")
            };
            let text = std::fs::read_to_string(format!("{dir}{name}")).unwrap();
            let lines = text
                .split('\n')
                .enumerate()
                .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
                .map(|(i, l)| (i + 1, l.to_owned()))
                .collect();
            files.push(VectorFile {
                name: format!("{}{name}", if dir == DIRS[0] { "" } else { "ts/" }),
                kind: cli_kind(prefix),
                valid,
                lines,
            });
        }
    }
    files
}

fn pds(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pds"))
        .args(args)
        .output()
        .expect("run pds")
}

/// Shortens long vectors in failure messages.
fn show(line: &str) -> String {
    if line.chars().count() <= 60 {
        format!("{line:?}")
    } else {
        let head: String = line.chars().take(40).collect();
        format!("{head:?}... ({} bytes)", line.len())
    }
}

/// Checks one process result against the expected verdict.
fn verdict_problem(output: &Output, valid: bool) -> Option<String> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    match (valid, output.status.code()) {
        (true, Some(0)) if stdout == "valid\n" && stderr.is_empty() => None,
        (false, Some(1)) if stdout.is_empty() && stderr.starts_with("invalid ") => None,
        _ => Some(format!(
            "expected {}, got status {:?}, stdout {stdout:?}, stderr {stderr:?}",
            if valid { "valid" } else { "invalid" },
            output.status
        )),
    }
}

#[test]
fn every_vector_line_one_process_each() {
    let files = vector_files();
    assert_eq!(files.len(), 31, "24 upstream + 7 TS files");
    let mut failures = Vec::new();
    let mut count = 0;
    for file in &files {
        assert!(!file.lines.is_empty(), "{} has no vectors", file.name);
        for (number, line) in &file.lines {
            // No `--`: values with a leading '-' must work as plain arguments.
            let output = pds(&["syntax", "check", file.kind, line]);
            if let Some(problem) = verdict_problem(&output, file.valid) {
                failures.push(format!("{}:{number}: {}: {problem}", file.name, show(line)));
            }
            count += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {count} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(count > 550, "only {count} vectors");
}

#[test]
fn stdin_mode_matches_the_per_value_command() {
    for file in vector_files() {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pds"))
            .args(["syntax", "check", file.kind, "--stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pds");
        let input: String = file.lines.iter().map(|(_, l)| format!("{l}\n")).collect();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        let verdicts: Vec<&str> = stdout.lines().collect();
        assert_eq!(verdicts.len(), file.lines.len(), "{}", file.name);
        for ((number, line), verdict) in file.lines.iter().zip(&verdicts) {
            let ok = if file.valid {
                *verdict == "valid"
            } else {
                verdict.starts_with("invalid: ")
            };
            assert!(ok, "{}:{number}: {}: {verdict}", file.name, show(line));
        }
        let expected = if file.valid { 0 } else { 1 };
        assert_eq!(output.status.code(), Some(expected), "{}", file.name);
    }
}

#[test]
fn reasons_and_usage() {
    let out = pds(&["syntax", "check", "did", "did:method:val:"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "invalid DID: must not end with ':'\n"
    );

    let out = pds(&["syntax", "check", "rkey", "--", "-"]);
    assert_eq!(out.status.code(), Some(0), "the rkey alias and `--` work");

    let out = pds(&["syntax", "check", "nope", "x"]);
    assert_eq!(out.status.code(), Some(2), "unknown kind is a usage error");

    let out = pds(&["syntax", "check", "did"]);
    assert_eq!(out.status.code(), Some(2), "missing value is a usage error");

    let out = pds(&["syntax", "check", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for kind in [
        "did",
        "handle",
        "nsid",
        "at-uri",
        "at-identifier",
        "record-key",
        "tid",
    ] {
        assert!(help.contains(kind), "--help lists {kind}:\n{help}");
    }
    for kind in ["datetime", "language", "cid", "uri"] {
        assert!(help.contains(kind), "--help lists {kind}:\n{help}");
    }
    assert!(!help.contains("--stdin"), "--stdin is hidden");
}
