//! Architecture invariant: protocol crates (`atp-*`) never depend on an HTTP server stack or SQL.
//!
//! Checked over `cargo metadata`, direct dependencies only: an HTTP *client* (reqwest, hickory) is allowed
//! in a protocol crate only as an optional dependency behind a feature; server stacks and SQL never.

use std::process::Command;

use serde_json::Value;

/// Crates a protocol crate must never depend on, optional or not.
const SERVER_OR_SQL: &[&str] = &[
    "axum",
    "hyper",
    "hyper-util",
    "tower",
    "tower-http",
    "warp",
    "actix-web",
    "rocket",
    "tokio-tungstenite",
    "rusqlite",
    "libsqlite3-sys",
    "sqlx",
    "diesel",
    "sea-orm",
    "postgres",
    "tokio-postgres",
];
/// Network clients a protocol crate may use only behind an optional feature.
const CLIENT_ONLY_OPTIONAL: &[&str] = &["reqwest", "hickory-resolver", "ureq", "isahc"];

/// The crates bound by the rule: every `atp-*` crate except the XRPC adapter.
fn is_protocol_crate(name: &str) -> bool {
    name.starts_with("atp-") && name != "atp-xrpc"
}

/// Returns one line per violation found in `cargo metadata` output.
fn violations(metadata: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let packages = metadata["packages"].as_array().cloned().unwrap_or_default();
    for pkg in packages {
        let name = pkg["name"].as_str().unwrap_or_default();
        if !is_protocol_crate(name) {
            continue;
        }
        for dep in pkg["dependencies"].as_array().cloned().unwrap_or_default() {
            // Dev-dependencies do not ship in the library.
            if dep["kind"].as_str() == Some("dev") {
                continue;
            }
            let dep_name = dep["name"].as_str().unwrap_or_default();
            let optional = dep["optional"].as_bool().unwrap_or(false);
            if SERVER_OR_SQL.contains(&dep_name) {
                out.push(format!(
                    "{name} depends on {dep_name} (server stack or SQL)"
                ));
            } else if CLIENT_ONLY_OPTIONAL.contains(&dep_name) && !optional {
                out.push(format!(
                    "{name} depends on {dep_name} unconditionally (HTTP/DNS clients must sit behind a feature)"
                ));
            }
        }
    }
    out
}

#[test]
fn protocol_crates_have_no_http_server_or_sql_dependency() {
    let output = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("metadata is JSON");
    let names: Vec<&str> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(
        names.iter().any(|n| is_protocol_crate(n)),
        "no protocol crate found in {names:?}"
    );
    let found = violations(&metadata);
    assert!(
        found.is_empty(),
        "layering violations:\n{}",
        found.join("\n")
    );
}

/// The checker itself must be able to fail.
#[test]
fn checker_flags_server_sql_and_unconditional_clients() {
    let fake = serde_json::json!({
        "packages": [
            {"name": "atp-repo", "dependencies": [
                {"name": "rusqlite", "kind": null, "optional": true},
                {"name": "serde", "kind": null, "optional": false},
                {"name": "axum", "kind": "dev", "optional": false}
            ]},
            {"name": "atp-identity", "dependencies": [
                {"name": "reqwest", "kind": null, "optional": false},
                {"name": "hickory-resolver", "kind": null, "optional": true}
            ]},
            {"name": "pds", "dependencies": [{"name": "axum", "kind": null, "optional": false}]}
        ]
    });
    let found = violations(&fake);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].contains("atp-repo depends on rusqlite"));
    assert!(found[1].contains("atp-identity depends on reqwest unconditionally"));
}
