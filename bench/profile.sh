#!/bin/sh
# Profiles one load cell against a fresh daemon: system calls per request (strace -c) and where
# the CPU goes (perf, cpu-clock, DWARF call graphs). What docs/performance-history.md's "Where the
# time goes" section was made with; re-run it for before/after figures of an optimization.
#
#   bench/profile.sh OP SIZE CONCURRENCY [BUILD_DIR]      e.g.  bench/profile.sh get 4096 16
#
# OP: put or get. Writes strace.txt, perf.data and perf-report.txt into a temp dir it prints.
set -eu
op=${1:?usage: bench/profile.sh put|get SIZE CONCURRENCY [BUILD_DIR]}
size=${2:?size in bytes}
conc=${3:?concurrency}
build=${4:-build-bench}
load="$build/bench/coffre_load"
out=$(mktemp -d "${TMPDIR:-/tmp}/coffre-profile-XXXXXX")
mkdir -p "$out/data"

"$build/coffre" serve --data-dir "$out/data" --listen 127.0.0.1:0 >"$out/daemon.out" 2>"$out/daemon.err" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q '^listening on' "$out/daemon.out" 2>/dev/null && break; sleep 0.1; done
endpoint=$(sed -n 's/^listening on \([^ ]*\).*/\1/p' "$out/daemon.out" | head -n 1)
common="--endpoint $endpoint --target s3 --credentials $out/data/dev-credentials.json"
$load $common --op mkbucket >/dev/null
$load $common --op populate --size "$size" --count 16 --concurrency 4 >/dev/null

run() {  # the measured cell
  if [ "$op" = get ]; then
    $load $common --op get --size "$size" --count 16 --concurrency "$conc" --duration "$1"
  else
    $load $common --op put --size "$size" --concurrency "$conc" --duration "$1" --prefix "p$2/"
  fi
}

echo "== system calls (strace -f -c), one 5 s run" >&2
strace -f -c -o "$out/strace.txt" -p "$pid" 2>/dev/null &
tracer=$!
sleep 1
run 5 1
kill -INT "$tracer"; wait "$tracer" 2>/dev/null || true
head -n 25 "$out/strace.txt"

echo "== CPU (perf record -e cpu-clock --call-graph dwarf), one 8 s run" >&2
perf record -q -F 250 -e cpu-clock --call-graph dwarf,16384 -o "$out/perf.data" -p "$pid" -- sleep 9 \
  >/dev/null 2>&1 &
recorder=$!
sleep 0.5
run 8 2
wait "$recorder" || true
perf report -i "$out/perf.data" --children --sort sym --stdio -g none --percent-limit 3 2>/dev/null |
  grep '%' | cut -c1-160 >"$out/perf-report.txt"
head -n 40 "$out/perf-report.txt"
echo "profile in $out" >&2
