//! `pds key` end to end: the real binary generates keys, shows them again from the private
//! hex, and refuses bad private keys with exit status 2.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn pds(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pds"))
        .args(args)
        .output()
        .expect("run pds")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "status {:?}, stderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("utf-8 stdout")
}

/// The value of a `label: value` line.
fn line_value<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find_map(|line| line.strip_prefix(label)?.strip_prefix(": "))
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{text}"))
}

#[test]
fn generate_then_show_round_trips_as_text() {
    for (curve, did_prefix) in [("k256", "did:key:zQ3s"), ("p256", "did:key:zDna")] {
        let generated = stdout(&pds(&["key", "generate", "--curve", curve]));
        let did = line_value(&generated, "did:key");
        let multikey = line_value(&generated, "multikey");
        let private = line_value(&generated, "private key (hex)");
        assert!(did.starts_with(did_prefix), "{curve}: {did}");
        assert_eq!(did, format!("did:key:{multikey}"), "{curve}");
        assert_eq!(private.len(), 64, "{curve}: {private}");

        let shown = stdout(&pds(&["key", "show", private, "--curve", curve]));
        assert_eq!(line_value(&shown, "did:key"), did, "{curve}");
        assert_eq!(line_value(&shown, "multikey"), multikey, "{curve}");
        assert!(
            !shown.contains(private),
            "{curve}: show must not echo the private key"
        );
    }
}

#[test]
fn generate_then_show_round_trips_as_json() {
    for curve in ["k256", "p256"] {
        let generated: Value = serde_json::from_str(&stdout(&pds(&[
            "key", "generate", "--curve", curve, "--json",
        ])))
        .expect("generate --json prints JSON");
        assert_eq!(generated["curve"], curve);
        let private = generated["private_key_hex"]
            .as_str()
            .expect("private_key_hex");
        let shown: Value = serde_json::from_str(&stdout(&pds(&[
            "key", "show", private, "--curve", curve, "--json",
        ])))
        .expect("show --json prints JSON");
        assert_eq!(shown["did_key"], generated["did_key"], "{curve}");
        assert_eq!(shown["multikey"], generated["multikey"], "{curve}");
        assert!(shown.get("private_key_hex").is_none(), "{curve}");
    }
}

#[test]
fn default_curve_is_k256_and_stdin_input_works() {
    let generated = stdout(&pds(&["key", "generate"]));
    assert!(line_value(&generated, "did:key").starts_with("did:key:zQ3s"));
    let private = line_value(&generated, "private key (hex)");

    let mut child = Command::new(env!("CARGO_BIN_EXE_pds"))
        .args(["key", "show", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pds");
    writeln!(child.stdin.take().expect("stdin"), "{private}").expect("write stdin");
    let shown = stdout(&child.wait_with_output().expect("wait"));
    assert_eq!(
        line_value(&shown, "did:key"),
        line_value(&generated, "did:key")
    );
}

#[test]
fn known_key_gives_known_did() {
    // tests/vectors/crypto/w3c_didkey_P256.json, its base58 private key rewritten as hex.
    let private = "82ebbd63ebbd9ff60141a69bd4c9be282f2415e8eafa9d42c0ed396daccca979";
    let shown = stdout(&pds(&["key", "show", private, "--curve", "p256"]));
    assert_eq!(
        line_value(&shown, "did:key"),
        "did:key:zDnaeTiq1PdzvZXUaMdezchcMJQpBdH2VN4pgrrEhMCCbmwSb"
    );
}

#[test]
fn bad_input_exits_2() {
    let zero = "00".repeat(32);
    let over_order = "ff".repeat(32);
    let short = "11".repeat(31);
    for (args, expected) in [
        (vec!["key", "show", "not-hex"], "hex"),
        (vec!["key", "show", "abc"], "hex"),
        (vec!["key", "show", short.as_str()], "32 bytes"),
        (vec!["key", "show", zero.as_str()], "curve order"),
        (
            vec!["key", "show", over_order.as_str(), "--curve", "p256"],
            "curve order",
        ),
        (vec!["key", "generate", "--curve", "ed25519"], "ed25519"),
    ] {
        let output = pds(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(output.stdout.is_empty(), "{args:?}: nothing on stdout");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: stderr {stderr}");
    }
}
