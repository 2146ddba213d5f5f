//! `pds account …` and `pds invite create` through the real binary against a running
//! `pds serve`, configured by the server's own `PDS_*` environment (URL from
//! PDS_HOSTNAME/PDS_PORT, admin password from the data directory's secrets.json) or by
//! `--url` / `--admin-password`; exit codes 0 (done), 1 (the server refused), 2 (usage,
//! configuration or connection errors).

mod harness;

use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

use harness::{Reply, Server, free_port, post};

/// The environment `pds serve` runs with in the harness, without any admin password.
fn server_env(server: &Server) -> Vec<(String, String)> {
    vec![
        ("PDS_PORT".into(), server.port.to_string()),
        ("PDS_PLC_EMBEDDED_PORT".into(), server.plc_port.to_string()),
        (
            "PDS_DATA_DIRECTORY".into(),
            server.data_dir.display().to_string(),
        ),
        ("PDS_HOSTNAME".into(), "localhost".into()),
        ("PDS_DEV_MODE".into(), "true".into()),
    ]
}

/// Runs `pds <args>` with exactly `env` as its `PDS_*` environment and stdin closed.
async fn pds(args: &[&str], env: &[(String, String)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pds"));
    cmd.args(args).stdin(Stdio::null());
    for (key, _) in std::env::vars() {
        if key.starts_with("PDS_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the exit code, showing the output otherwise.
fn expect(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}\nstdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
}

/// The value of the `name:` line.
fn field(text: &str, name: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name}: line in {text}"))
        .trim()
        .to_owned()
}

async fn login(server: &Server, id: &str, password: &str) -> Reply {
    post(
        &reqwest::Client::new(),
        &server.xrpc("com.atproto.server.createSession"),
        None,
        &json!({"identifier": id, "password": password}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn account_commands_with_the_servers_environment() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[("PDS_INVITE_REQUIRED", "true")]).await;
    let env = server_env(&server);

    // create: an invite code is made for it; the generated password is printed once.
    let out = pds(&["account", "create", "alice@example.com", "alice"], &env).await;
    expect(&out, 0, "account create");
    let text = stdout(&out);
    let alice = field(&text, "did");
    assert!(alice.starts_with("did:plc:"), "{text}");
    assert_eq!(field(&text, "handle"), "alice.test");
    let password = field(&text, "password");
    assert_eq!(password.len(), 24);
    login(&server, "alice.test", &password)
        .await
        .ok("login with the generated password");
    let out = pds(
        &[
            "account",
            "create",
            "bob@example.com",
            "bob.test",
            "--password",
            "hunter22",
            "--json",
        ],
        &env,
    )
    .await;
    expect(&out, 0, "account create --json");
    let bob: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(bob["handle"], "bob.test");
    assert!(
        bob.get("password").is_none(),
        "a given password is not echoed"
    );
    let bob = bob["did"].as_str().unwrap().to_owned();
    let out = pds(
        &["account", "create", "other@example.com", "alice.test"],
        &env,
    )
    .await;
    expect(&out, 1, "a taken handle is the server's refusal");
    assert!(
        stderr(&out).contains("HandleNotAvailable"),
        "{}",
        stderr(&out)
    );

    // list and info.
    let out = pds(&["account", "list"], &env).await;
    expect(&out, 0, "account list");
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].starts_with("HANDLE") && lines[0].contains("EMAIL") && lines[0].contains("STATUS")
    );
    for (handle, email, did) in [
        ("alice.test", "alice@example.com", &alice),
        ("bob.test", "bob@example.com", &bob),
    ] {
        let line = lines
            .iter()
            .find(|l| l.starts_with(handle))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(
            line.contains(email) && line.contains(did.as_str()) && line.ends_with("active"),
            "{line}"
        );
    }
    let out = pds(&["account", "list", "--json"], &env).await;
    expect(&out, 0, "account list --json");
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let out = pds(&["account", "info", "alice.test"], &env).await;
    expect(&out, 0, "account info");
    let text = stdout(&out);
    assert_eq!(field(&text, "did"), alice);
    assert_eq!(field(&text, "email"), "alice@example.com (not confirmed)");
    assert_eq!(field(&text, "status"), "active");
    assert!(
        field(&text, "invited with").starts_with("localhost-"),
        "{text}"
    );
    let out = pds(&["account", "info", &bob, "--json"], &env).await;
    expect(&out, 0, "account info --json");
    let info: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["account"]["handle"], "bob.test");
    assert_eq!(info["status"]["takedown"]["applied"], false);
    let out = pds(&["account", "info", "nobody.test"], &env).await;
    expect(&out, 1, "info of an unknown handle");

    // reset-password.
    let out = pds(&["account", "reset-password", "alice.test"], &env).await;
    expect(&out, 0, "account reset-password");
    let new_password = field(&stdout(&out), "password");
    assert_ne!(new_password, password);
    assert_eq!(login(&server, "alice.test", &password).await.status, 401);
    login(&server, "alice.test", &new_password)
        .await
        .ok("login with the reset password");

    // takedown / untakedown.
    let out = pds(&["account", "takedown", &alice, "--ref", "T-1"], &env).await;
    expect(&out, 0, "account takedown");
    assert_eq!(
        stdout(&out).trim(),
        format!("{alice}: taken down (ref T-1)")
    );
    let denied = login(&server, "alice.test", &new_password).await;
    assert_eq!(denied.error(), "AccountTakedown");
    let out = pds(&["account", "info", &alice], &env).await;
    assert_eq!(field(&stdout(&out), "status"), "takendown (ref T-1)");
    let out = pds(&["account", "list"], &env).await;
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.starts_with("alice.test") && l.ends_with("takendown"))
    );
    let out = pds(&["account", "untakedown", "alice.test"], &env).await;
    expect(&out, 0, "account untakedown");
    assert_eq!(stdout(&out).trim(), format!("{alice}: takedown lifted"));
    login(&server, "alice.test", &new_password)
        .await
        .ok("login after untakedown");

    // delete: refused without confirmation when stdin is not a terminal.
    let out = pds(&["account", "delete", &bob], &env).await;
    expect(&out, 2, "delete without --yes");
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    login(&server, "bob.test", "hunter22")
        .await
        .ok("bob still exists");
    let out = pds(&["account", "delete", "bob.test", "--yes"], &env).await;
    expect(&out, 0, "delete --yes");
    assert_eq!(stdout(&out).trim(), format!("{bob}: deleted"));
    let out = pds(&["account", "info", &bob], &env).await;
    expect(&out, 1, "info of a deleted account");
    assert!(stderr(&out).contains("NotFound"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn invite_create_prints_usable_codes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[("PDS_INVITE_REQUIRED", "true")]).await;
    let env = server_env(&server);
    let out = pds(&["invite", "create"], &env).await;
    expect(&out, 0, "invite create");
    let code = stdout(&out).trim().to_owned();
    assert!(
        code.starts_with("localhost-") && !code.contains('\n'),
        "{code}"
    );
    let out = pds(&["invite", "create", "--uses", "2", "--count", "3"], &env).await;
    expect(&out, 0, "invite create --count 3");
    let codes: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    assert_eq!(codes.len(), 3);
    let client = reqwest::Client::new();
    for name in ["ann", "amy"] {
        post(
            &client,
            &server.xrpc("com.atproto.server.createAccount"),
            None,
            &json!({"handle": format!("{name}.test"), "email": format!("{name}@example.com"),
                "password": "hunter22", "inviteCode": codes[0]}),
        )
        .await
        .ok("a two-use code serves two accounts");
    }
    let third = post(
        &client,
        &server.xrpc("com.atproto.server.createAccount"),
        None,
        &json!({"handle": "abe.test", "email": "abe@example.com", "password": "hunter22", "inviteCode": codes[0]}),
    )
    .await;
    assert_eq!(third.error(), "InvalidInviteCode");
    let out = pds(&["invite", "create", "--uses", "0"], &env).await;
    expect(&out, 2, "--uses 0 is a usage error");
    let out = pds(&["invite", "create", "--for", "not-a-did"], &env).await;
    expect(&out, 1, "the server refuses a bad account");
}

#[tokio::test(flavor = "multi_thread")]
async fn flags_override_the_environment_and_exit_codes_are_stable() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[("PDS_ADMIN_PASSWORD", "s3cret")]).await;
    let url = server.base.clone();
    let none: Vec<(String, String)> = Vec::new();

    // Flags only, no PDS_* environment at all.
    let out = pds(
        &[
            "account",
            "list",
            "--url",
            &url,
            "--admin-password",
            "s3cret",
        ],
        &none,
    )
    .await;
    expect(&out, 0, "--url and --admin-password");
    assert_eq!(
        stdout(&out).lines().count(),
        1,
        "only the header: {}",
        stdout(&out)
    );
    // The password from PDS_ADMIN_PASSWORD, the URL from the flag (global flags go anywhere).
    let env = vec![("PDS_ADMIN_PASSWORD".to_owned(), "s3cret".to_owned())];
    let out = pds(
        &["account", "--url", &url, "create", "zoe@example.com", "zoe"],
        &env,
    )
    .await;
    expect(&out, 0, "create with PDS_ADMIN_PASSWORD");
    // A wrong password is the server's refusal: 1.
    let out = pds(
        &[
            "account",
            "list",
            "--url",
            &url,
            "--admin-password",
            "wrong",
        ],
        &none,
    )
    .await;
    expect(&out, 1, "wrong admin password");
    assert!(
        stderr(&out).contains("AuthenticationRequired"),
        "{}",
        stderr(&out)
    );
    // Nothing listening: 2.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let out = pds(
        &["account", "list", "--url", &closed, "--admin-password", "x"],
        &none,
    )
    .await;
    expect(&out, 2, "connection refused");
    // No password anywhere (empty data directory): 2, with a hint.
    let empty = tempfile::tempdir().unwrap();
    let env = vec![(
        "PDS_DATA_DIRECTORY".to_owned(),
        empty.path().display().to_string(),
    )];
    let out = pds(&["account", "list", "--url", &url], &env).await;
    expect(&out, 2, "no admin password");
    assert!(
        stderr(&out).contains("--admin-password"),
        "{}",
        stderr(&out)
    );
    assert!(
        !empty.path().join("secrets.json").exists(),
        "the CLI never writes secrets"
    );
    // A malformed configuration: 2.
    let env = vec![("PDS_PORT".to_owned(), "http".to_owned())];
    let out = pds(&["account", "list"], &env).await;
    expect(&out, 2, "bad PDS_PORT");
    // `account token` reads the data directory, without the admin API.
    let data_dir = server.data_dir.display().to_string();
    let out = pds(
        &[
            "account",
            "token",
            "nobody.test",
            "confirm_email",
            "--data-dir",
            &data_dir,
        ],
        &none,
    )
    .await;
    expect(&out, 1, "account token for an unknown account");
    // Usage errors: 2.
    expect(
        &pds(&["account", "frobnicate"], &none).await,
        2,
        "unknown subcommand",
    );
    expect(
        &pds(&["account", "takedown"], &none).await,
        2,
        "missing argument",
    );
}
