//! `pds migrate` end to end on 127.0.0.1, with the real binaries: the reference PLC directory
//! (`@did-plc/server`, `tests/interop/start-refnet.mjs --only-plc`) shared by every host, our
//! `pds serve` using it, and reference PDSs (`@atproto/pds`) kept up by
//! `tests/interop/scripts/cli_migrate_refpds.mjs` while the command runs.
//!
//! 1. reference → ours: an account with 500 posts (10 with an image), a profile and preferences.
//!    The command is stopped five times before it is let finish: SIGKILL while blobs are in flight,
//!    the test hook after 3 more blobs, after the PLC signature (signed, not submitted), after the
//!    PLC submission (handed over, not activated) and after the activation (old host still active).
//!    Each run continues the last; the final one verifies (exit 0), and so does one more run.
//! 2. ours → a fresh reference PDS, stopped once after the PLC handover, then finished.
//!
//! After each move the test checks on its own: the PLC audit log grew by exactly one operation
//! (no duplicate handover), the new host holds 501 records and 10 blobs with nothing missing, the
//! new account is active and the old one deactivated.

mod harness;
mod node;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::Server;
use node::{KillOnDrop, interop_dir, node_with, spawn_until, start_reference_plc};
use serde_json::{Value, json};

/// Spawns `node <args>` in tests/interop and waits for the stdout line starting with `prefix`;
/// returns the process and the rest of that line.
fn spawn_node_until(args: &[&str], prefix: &'static str) -> (KillOnDrop, String) {
    spawn_until("@atproto/pds", args, move |line| {
        Some(line.trim().strip_prefix(prefix)?.trim().to_owned())
    })
}

/// A reference PDS kept up for the test.
struct RefPds {
    _process: KillOnDrop,
    url: String,
    account_db: String,
    did: Option<String>,
}

fn start_ref_pds(plc: &str, dir: &Path, domain: &str, fill: Option<(&str, &str)>) -> RefPds {
    let dir = dir.to_str().unwrap().to_owned();
    let mut args = vec![
        "scripts/cli_migrate_refpds.mjs",
        "serve",
        "--plc",
        plc,
        "--dir",
        &dir,
        "--handle-domain",
        domain,
    ];
    if let Some((handle, password)) = fill {
        args.extend([
            "--fill",
            handle,
            "--password",
            password,
            "--email",
            "alice@old.example.com",
            "--posts",
            "500",
            "--blobs",
            "10",
        ]);
    }
    let (process, line) = spawn_node_until(&args, "READY ");
    let v: Value = serde_json::from_str(&line).expect("READY json");
    RefPds {
        _process: process,
        url: v["url"].as_str().unwrap().to_owned(),
        account_db: v["accountDb"].as_str().unwrap().to_owned(),
        did: v["did"].as_str().map(str::to_owned),
    }
}

/// One `pds migrate` invocation.
struct Migrate {
    args: Vec<String>,
    env: Vec<(String, String)>,
    cwd: PathBuf,
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Migrate {
    fn command(&self, extra_env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pds"));
        cmd.arg("migrate")
            .args(&self.args)
            .current_dir(&self.cwd)
            .env_remove("PDS_MIGRATE_TEST_STOP_AFTER")
            .env_remove("PDS_MIGRATE_TEST_BLOB_DELAY_MS")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .envs(extra_env.iter().copied())
            .stdin(Stdio::null());
        cmd
    }

    /// Runs to the end.
    async fn run(&self, extra_env: &[(&str, &str)]) -> Outcome {
        let mut cmd = self.command(extra_env);
        let out = tokio::task::spawn_blocking(move || cmd.output().expect("run pds migrate"))
            .await
            .unwrap();
        let outcome = Outcome {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        println!("pds migrate {extra_env:?}:\n{outcome}");
        outcome
    }

    /// Runs with the test hook stopping after `step`; expects exit 3.
    async fn stop_after(&self, step: &str) -> Outcome {
        let out = self.run(&[("PDS_MIGRATE_TEST_STOP_AFTER", step)]).await;
        assert_eq!(out.code, Some(3), "stop after {step}: {out}");
        assert!(
            out.stdout.contains("test hook: stopping after"),
            "stop after {step}: {out}"
        );
        out
    }

    /// Runs to success; expects exit 0 and a verified migration.
    async fn finish(&self) -> Outcome {
        let out = self.run(&[]).await;
        assert_eq!(out.code, Some(0), "{out}");
        assert!(out.stdout.contains("migration verified"), "{out}");
        assert!(!out.stdout.contains("[FAILED]"), "{out}");
        out
    }
}

/// A session on `base` (any account state) for the checks.
async fn login(client: &reqwest::Client, base: &str, id: &str, password: &str) -> String {
    let res = harness::post(
        client,
        &format!("{base}/xrpc/com.atproto.server.createSession"),
        None,
        &json!({"identifier": id, "password": password}),
    )
    .await
    .ok("createSession");
    res["accessJwt"].as_str().unwrap().to_owned()
}

async fn authed_get(client: &reqwest::Client, url: &str, token: &str) -> Value {
    let res = client.get(url).bearer_auth(token).send().await.unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{url}: {status} {body}");
    body
}

async fn plc_ops(client: &reqwest::Client, plc: &str, did: &str) -> Vec<Value> {
    let res = client
        .get(format!("{plc}/{did}/log/audit"))
        .send()
        .await
        .unwrap();
    res.json::<Vec<Value>>().await.unwrap()
}

/// The independent checks after a move to `base`.
async fn check_moved(
    client: &reqwest::Client,
    base: &str,
    old: &str,
    did: &str,
    password: &str,
) -> Value {
    let token = login(client, base, did, password).await;
    let status = authed_get(
        client,
        &format!("{base}/xrpc/com.atproto.server.checkAccountStatus"),
        &token,
    )
    .await;
    assert_eq!(status["activated"], true, "{status}");
    assert_eq!(status["validDid"], true, "{status}");
    assert_eq!(status["indexedRecords"], 501, "{status}");
    assert_eq!(status["expectedBlobs"], 10, "{status}");
    assert_eq!(status["importedBlobs"], 10, "{status}");
    let missing = authed_get(
        client,
        &format!("{base}/xrpc/com.atproto.repo.listMissingBlobs"),
        &token,
    )
    .await;
    assert_eq!(missing["blobs"], json!([]), "{missing}");
    let blobs = authed_get(
        client,
        &format!("{base}/xrpc/com.atproto.sync.listBlobs?did={did}"),
        &token,
    )
    .await;
    assert_eq!(blobs["cids"].as_array().unwrap().len(), 10, "{blobs}");
    let prefs = authed_get(
        client,
        &format!("{base}/xrpc/app.bsky.actor.getPreferences"),
        &token,
    )
    .await;
    assert!(
        prefs["preferences"].as_array().unwrap().len() >= 3,
        "{prefs}"
    );
    let old_status = harness::get(
        client,
        &format!("{old}/xrpc/com.atproto.sync.getRepoStatus"),
        &[("did", did)],
    )
    .await
    .ok("getRepoStatus on the old host");
    assert_eq!(old_status["active"], false, "{old_status}");
    assert_eq!(old_status["status"], "deactivated", "{old_status}");
    prefs
}

/// SIGKILLs the command once the new host (ours) has some of the blobs but not all.
async fn kill_during_blobs(
    m: &Migrate,
    client: &reqwest::Client,
    base: &str,
    did: &str,
    password: &str,
) {
    let mut child = m
        .command(&[("PDS_MIGRATE_TEST_BLOB_DELAY_MS", "1500")])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut token: Option<String> = None;
    loop {
        assert!(Instant::now() < deadline, "no blob transfer seen");
        if let Some(status) = child.try_wait().unwrap() {
            panic!("pds migrate ended before the kill: {status}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if token.is_none() {
            let res = harness::post(
                client,
                &format!("{base}/xrpc/com.atproto.server.createSession"),
                None,
                &json!({"identifier": did, "password": password}),
            )
            .await;
            if res.status != 200 {
                continue;
            }
            token = res.body["accessJwt"].as_str().map(str::to_owned);
        }
        let res = client
            .get(format!("{base}/xrpc/com.atproto.server.checkAccountStatus"))
            .bearer_auth(token.as_deref().unwrap())
            .send()
            .await
            .unwrap();
        let status: Value = res.json().await.unwrap_or(Value::Null);
        let imported = status["importedBlobs"].as_u64().unwrap_or(0);
        if imported >= 1 {
            assert!(imported < 10, "all blobs moved before the kill: {status}");
            child.kill().unwrap();
            child.wait().unwrap();
            println!("killed pds migrate with {imported} of 10 blobs moved");
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_reference_to_ours_with_interruptions_and_back_to_reference() {
    let (_plc, plc_url) = start_reference_plc();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ours");
    let server = Server::start(&data, &[("PDS_DID_PLC_URL", plc_url.as_str())]).await;
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let client = reqwest::Client::new();
    let node = node_with("@atproto/pds");

    // ---- 1. reference → ours, interrupted five times.
    let old = start_ref_pds(
        &plc_url,
        &dir.path().join("ref-old"),
        ".refold.test",
        Some(("alice.refold.test", "old-password")),
    );
    let did = old.did.clone().expect("the filled account's DID");
    assert_eq!(plc_ops(&client, &plc_url, &did).await.len(), 1);
    let token_cmd = format!(
        "cd '{}' && '{}' scripts/cli_migrate_refpds.mjs token '{}' \"$PDS_MIGRATE_DID\"",
        interop_dir().display(),
        node.display(),
        old.account_db
    );
    let to_ours = Migrate {
        args: [
            "--from",
            &old.url,
            "--to",
            &server.base,
            "--handle",
            "alice.refold.test",
            "--new-handle",
            "alice.test",
            "--email",
            "alice@new.example.com",
            "--plc-url",
            &plc_url,
            "--plc-token-cmd",
            &token_cmd,
            "--blob-concurrency",
            "2",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect(),
        env: vec![
            ("PDS_MIGRATE_PASSWORD".into(), "old-password".into()),
            ("PDS_MIGRATE_NEW_PASSWORD".into(), "ours-password".into()),
        ],
        cwd: work.clone(),
    };
    kill_during_blobs(&to_ours, &client, &server.base, &did, "ours-password").await;
    let state_file = work.join(format!("pds-migrate-{}.json", did.replace(':', "_")));
    let state: Value = serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    assert_eq!(state["account_created"], true, "{state}");
    assert_eq!(state["blobs_done"], false, "{state}");

    let out = to_ours.stop_after("blobs:3").await;
    assert!(out.stdout.contains("[skip] create-account"), "{out}");
    assert!(out.stdout.contains("[skip] import-repo"), "{out}");
    let out = to_ours.stop_after("plc-sign").await;
    assert!(out.stdout.contains("[done] blobs"), "{out}");
    let out = to_ours.stop_after("plc-submit").await;
    assert!(out.stdout.contains("[skip] plc-sign"), "{out}");
    assert!(
        !out.stdout.contains("[done] plc-request"),
        "no second token: {out}"
    );
    assert_eq!(plc_ops(&client, &plc_url, &did).await.len(), 2);
    let out = to_ours.stop_after("activate").await;
    assert!(out.stdout.contains("[skip] plc-submit"), "{out}");
    let out = to_ours.finish().await;
    assert!(out.stdout.contains("[skip] activate"), "{out}");
    assert!(out.stdout.contains("[done] deactivate-old"), "{out}");
    // Once more: everything skipped, verified again.
    let out = to_ours.finish().await;
    assert!(out.stdout.contains("[skip] deactivate-old"), "{out}");

    let ops = plc_ops(&client, &plc_url, &did).await;
    assert_eq!(ops.len(), 2, "one handover operation: {ops:?}");
    let prefs_on_ours = check_moved(&client, &server.base, &old.url, &did, "ours-password").await;

    // ---- 2. ours → a fresh reference PDS: first with no way to get the PLC token (it stops at
    // plc-sign and says to pass the mailed token), then with the token from the environment,
    // stopped after the handover, then finished.
    let fresh = start_ref_pds(&plc_url, &dir.path().join("ref-new"), ".refnew.test", None);
    let to_ref = Migrate {
        args: [
            "--from",
            &server.base,
            "--to",
            &fresh.url,
            "--handle",
            "alice.test",
            "--new-handle",
            "alice.refnew.test",
            "--email",
            "alice@newer.example.com",
            "--plc-url",
            &plc_url,
            "--state-file",
            "back.json",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect(),
        env: vec![
            ("PDS_MIGRATE_PASSWORD".into(), "ours-password".into()),
            ("PDS_MIGRATE_NEW_PASSWORD".into(), "newer-password".into()),
        ],
        cwd: work.clone(),
    };
    let out = to_ref.run(&[]).await;
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stdout.contains("[done] plc-request"), "{out}");
    assert!(out.stderr.contains("error in step plc-sign"), "{out}");
    assert!(out.stderr.contains("--plc-token <token>"), "{out}");
    // The token our server "mailed", as its operator would read it.
    let token = Command::new(env!("CARGO_BIN_EXE_pds"))
        .args(["account", "token", &did, "plc_operation"])
        .env("PDS_DATA_DIRECTORY", &data)
        .output()
        .unwrap();
    assert!(token.status.success(), "pds account token: {token:?}");
    let token = String::from_utf8(token.stdout).unwrap().trim().to_owned();
    let out = to_ref
        .run(&[
            ("PDS_MIGRATE_PLC_TOKEN", token.as_str()),
            ("PDS_MIGRATE_TEST_STOP_AFTER", "plc-submit"),
        ])
        .await;
    assert_eq!(out.code, Some(3), "{out}");
    assert!(
        !out.stdout.contains("[done] plc-request"),
        "no new token: {out}"
    );
    assert!(out.stdout.contains("[done] plc-submit"), "{out}");
    to_ref.finish().await;
    assert!(work.join("back.json").is_file());
    let ops = plc_ops(&client, &plc_url, &did).await;
    assert_eq!(ops.len(), 3, "one more handover operation: {ops:?}");
    let prefs_on_ref = check_moved(&client, &fresh.url, &server.base, &did, "newer-password").await;
    assert_eq!(prefs_on_ref, prefs_on_ours);
}

#[test]
fn missing_values_without_a_terminal_are_usage_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_pds"))
        .args(["migrate", "--from", "http://127.0.0.1:9"])
        .env_remove("PDS_MIGRATE_PASSWORD")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("missing --to"), "{stderr}");
}
