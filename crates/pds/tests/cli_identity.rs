//! `pds identity resolve` against a canned PLC directory on 127.0.0.1: one exit code per failure
//! kind. Handles used here are under reserved TLDs (`.invalid`), which are refused before any DNS
//! query, so no test touches real DNS.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::process::{Command, Output};
use std::sync::Arc;

use serde_json::{Value, json};

const KEY: &str = "did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme";
const MULTIKEY: &str = "zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme";

/// Serves `routes` (path → status, body) on a background thread; returns the base URL.
fn serve(routes: HashMap<String, (u16, String)>) -> String {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let routes = Arc::new(routes);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut request_line = String::new();
            let _ = reader.read_line(&mut request_line);
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                    break;
                }
            }
            let path = request_line.split_whitespace().nth(1).unwrap_or("");
            let (status, body) = routes
                .get(path)
                .cloned()
                .unwrap_or((404, json!({"message": "DID not registered"}).to_string()));
            let _ = write!(
                conn,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

fn doc(did: &str, aka: &[&str], key: &str) -> String {
    json!({
        "id": did,
        "alsoKnownAs": aka,
        "verificationMethod": [{
            "id": format!("{did}#atproto"),
            "type": "Multikey",
            "controller": did,
            "publicKeyMultibase": key,
        }],
        "service": [{
            "id": "#atproto_pds",
            "type": "AtprotoPersonalDataServer",
            "serviceEndpoint": "https://pds.example.com",
        }],
    })
    .to_string()
}

fn resolve(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pds"))
        .args(["identity", "resolve"])
        .args(args)
        .output()
        .expect("run pds")
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

const NO_HANDLE: &str = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa";
const CLAIMS_INVALID: &str = "did:plc:bbbbbbbbbbbbbbbbbbbbbbbb";
const BAD_KEY: &str = "did:plc:cccccccccccccccccccccccc";
const GARBAGE: &str = "did:plc:dddddddddddddddddddddddd";
const UNKNOWN: &str = "did:plc:eeeeeeeeeeeeeeeeeeeeeeee";

fn directory() -> String {
    serve(HashMap::from([
        (
            format!("/{NO_HANDLE}"),
            (200, doc(NO_HANDLE, &[], MULTIKEY)),
        ),
        (
            format!("/{CLAIMS_INVALID}"),
            (200, doc(CLAIMS_INVALID, &["at://alice.invalid"], MULTIKEY)),
        ),
        (format!("/{BAD_KEY}"), (200, doc(BAD_KEY, &[], "zNotAKey"))),
        (format!("/{GARBAGE}"), (200, "<html>oops</html>".to_owned())),
    ]))
}

#[test]
fn each_failure_kind_has_its_exit_code() {
    let url = directory();
    let run = |id: &str| resolve(&[id, "--plc-url", &url]);

    let ok = run(NO_HANDLE);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    assert!(stdout.contains(&format!("did: {NO_HANDLE}")), "{stdout}");
    assert!(stdout.contains("handle: (none declared)"), "{stdout}");
    assert!(stdout.contains("pds: https://pds.example.com"), "{stdout}");
    assert!(stdout.contains(&format!("signing key: {KEY}")), "{stdout}");
    assert!(
        stdout.contains("\"alsoKnownAs\""),
        "document printed: {stdout}"
    );

    let mismatch = run(CLAIMS_INVALID);
    assert_eq!(mismatch.status.code(), Some(4), "{mismatch:?}");
    let stdout = String::from_utf8_lossy(&mismatch.stdout);
    assert!(
        stdout.contains("handle: alice.invalid (NOT verified"),
        "{stdout}"
    );
    assert!(stdout.contains("pds: https://pds.example.com"), "{stdout}");

    assert_eq!(run(BAD_KEY).status.code(), Some(1), "invalid key");
    assert_eq!(run(GARBAGE).status.code(), Some(1), "invalid document");
    assert_eq!(run(UNKNOWN).status.code(), Some(3), "not found");
    assert_eq!(
        run("alice.invalid").status.code(),
        Some(3),
        "handle not found"
    );
    assert_eq!(
        run("did:web:example.com:user").status.code(),
        Some(3),
        "path"
    );
    assert_eq!(run("not a handle").status.code(), Some(2), "usage");

    // Nothing listens on a just-closed port: network failure.
    let closed = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let down = resolve(&[NO_HANDLE, "--plc-url", &dead]);
    assert_eq!(down.status.code(), Some(5), "{down:?}");
    // did:web on loopback is refused outside dev mode, before connecting: also network.
    assert_eq!(run("did:web:127.0.0.1").status.code(), Some(5));
}

#[test]
fn json_output_carries_every_field() {
    let url = directory();
    let out = resolve(&[CLAIMS_INVALID, "--plc-url", &url, "--json"]);
    assert_eq!(out.status.code(), Some(4));
    let v = json_of(&out);
    assert_eq!(v["did"], CLAIMS_INVALID);
    assert_eq!(v["handle"], "alice.invalid");
    assert_eq!(v["handleVerified"], false);
    assert!(
        v["handleProblem"]
            .as_str()
            .unwrap()
            .contains("alice.invalid")
    );
    assert_eq!(v["pdsEndpoint"], "https://pds.example.com");
    assert_eq!(v["signingKey"], KEY);
    assert_eq!(v["didDocument"]["id"], CLAIMS_INVALID);
    assert_eq!(v["error"]["kind"], "handle_mismatch");

    let out = resolve(&[UNKNOWN, "--plc-url", &url, "--json"]);
    assert_eq!(out.status.code(), Some(3));
    let v = json_of(&out);
    assert_eq!(v["error"]["kind"], "not_found");
    assert_eq!(v["didDocument"], Value::Null);
}
