#!/bin/sh
# Runs fuzz_http1 for a bounded time and prints its figures.
# Usage: tests/fuzz/run.sh BUILD_DIR      (FUZZ_SECONDS=60 by default)
# The working corpus lives in BUILD_DIR/fuzz/http1 (seeded from the unit-test corpus and
# tests/fuzz/seeds/http1); crash reproducers land in BUILD_DIR/fuzz/artifacts.
set -eu
build=${1:?usage: run.sh BUILD_DIR}
seconds=${FUZZ_SECONDS:-60}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=$build/bin/fuzz_http1
[ -x "$bin" ] || { echo "run.sh: $bin not built (cmake -DCORRAL_FUZZ=ON, clang)" >&2; exit 2; }

work=$build/fuzz
mkdir -p "$work/http1" "$work/artifacts"
cp "$root"/tests/unit/data/http1/valid/*.http "$work/http1/"
cp "$here"/seeds/http1/*.http "$work/http1/"
log=$work/http1.log

echo "fuzz_http1: ${seconds}s on $(ls "$work/http1" | wc -l) corpus files"
status=0
"$bin" -max_total_time="$seconds" -max_len=4096 -timeout=10 -print_final_stats=1 \
  -dict="$here/http1.dict" -artifact_prefix="$work/artifacts/" "$work/http1" >"$log" 2>&1 || status=$?

last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
echo "last status: $last"
grep -E 'stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "$log" || true
cov=$(echo "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
ft=$(echo "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
echo "coverage: ${cov:-?} edges, ${ft:-?} features; corpus now $(ls "$work/http1" | wc -l) files"
if [ "$status" != 0 ]; then
  echo "fuzz_http1 FAILED (exit $status); see $log and $work/artifacts" >&2
  grep -E 'ERROR|fuzz_http1:|SUMMARY' "$log" | head -n 20 >&2 || true
  exit "$status"
fi
