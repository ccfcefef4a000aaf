#!/bin/sh
# Runs every libFuzzer target for a bounded time and prints its figures (see README.md).
# Usage: tests/fuzz/run.sh BUILD_DIR
#   FUZZ_TARGETS="fuzz_h2 fuzz_config"  the targets to run (default: all)
#   FUZZ_SECONDS=N                      seconds per target (default 100: about 10 min for all)
#   FUZZ_MERGE=1                        afterwards, add what each run found that brings
#                                       new coverage to the committed corpus (-merge=1)
# The working corpus of a target lives in BUILD_DIR/fuzz/<target>, seeded from
# tests/fuzz/corpus/<target>/ (and the unit-test HTTP/1.1 corpus); crash, leak and timeout
# reproducers land in BUILD_DIR/fuzz/artifacts. Exits 1 when any target failed.
set -u
build=${1:?usage: run.sh BUILD_DIR}
seconds=${FUZZ_SECONDS:-100}
all="fuzz_http1 fuzz_h2 fuzz_fastcgi fuzz_cgi_head fuzz_config fuzz_control fuzz_proxy_protocol"
targets=${FUZZ_TARGETS:-$all}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$build/fuzz
mkdir -p "$work/artifacts"
# A smaller ASan quarantine than the default 256 MiB: an input allocates far less, so a
# use-after-free within it is still caught, and the fuzzers run about twice as fast.
export ASAN_OPTIONS="${ASAN_OPTIONS:-quarantine_size_mb=32}"
# Symbolized stacks in crash reports (Debian's llvm-14 has no unversioned llvm-symbolizer).
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ] && [ -x /usr/lib/llvm-14/bin/llvm-symbolizer ]; then
  export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer
fi

# Longest input per target: enough for a few requests, frames or records.
max_len() {
  case "$1" in
    fuzz_h2) echo 16384 ;;
    fuzz_http1) echo 4096 ;;
    *) echo 8192 ;;
  esac
}

summary=""
failed=0
for t in $targets; do
  bin=$build/bin/$t
  if [ ! -x "$bin" ]; then
    echo "run.sh: $bin not built (cmake -DCORRAL_FUZZ=ON with clang)" >&2
    failed=1
    summary="$summary$(printf '%-14s %s' "$t" "NOT BUILT")
"
    continue
  fi
  corpus=$work/$t
  mkdir -p "$corpus"
  [ -d "$here/corpus/$t" ] && cp "$here/corpus/$t"/* "$corpus/" 2>/dev/null
  [ "$t" = fuzz_http1 ] && cp "$root"/tests/unit/data/http1/valid/*.http "$corpus/"
  dict=""
  [ -f "$here/$t.dict" ] && dict="-dict=$here/$t.dict"
  log=$work/$t.log
  start_files=$(ls "$corpus" | wc -l)
  echo "== $t: ${seconds}s from $start_files corpus files"
  before=$(ls "$work/artifacts" | wc -l)
  # -timeout: an input that runs for 10 s is a hang; -rss_limit_mb: 2 GiB is a leak or a bomb.
  # shellcheck disable=SC2086
  "$bin" -max_total_time="$seconds" -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 $dict -artifact_prefix="$work/artifacts/$t-" "$corpus" >"$log" 2>&1
  status=$?
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  cov=$(echo "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
  ft=$(echo "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
  files=$(ls "$corpus" | wc -l)
  if [ "$status" = 0 ]; then
    result=clean
  else
    failed=1
    artifact=$(ls -t "$work/artifacts" | head -n 1)
    [ "$(ls "$work/artifacts" | wc -l)" -gt "$before" ] || artifact="(no artifact)"
    result="FAILED (exit $status): $work/artifacts/$artifact; log $log"
    grep -E 'ERROR|^fuzz_|SUMMARY|runtime error' "$log" | head -n 12 >&2
  fi
  line=$(printf '%-14s runs %-10s exec/s %-7s cov %-6s ft %-7s corpus %-6s %s' "$t" "${runs:-?}" "${rate:-?}" \
    "${cov:-?}" "${ft:-?}" "$files" "$result")
  echo "$line"
  summary="$summary$line
"
  if [ "${FUZZ_MERGE:-0}" = 1 ] && [ "$status" = 0 ]; then
    # -merge=1 adds to the committed corpus only the inputs that bring new coverage (the
    # files already there, seeds included, are kept).
    mkdir -p "$here/corpus/$t"
    n=$(ls "$here/corpus/$t" | wc -l)
    # shellcheck disable=SC2086
    if "$bin" -merge=1 -max_len="$(max_len "$t")" $dict "$here/corpus/$t" "$corpus" >"$work/$t.merge.log" 2>&1; then
      echo "   merged: tests/fuzz/corpus/$t has $(ls "$here/corpus/$t" | wc -l) files (was $n)"
    else
      echo "   merge failed: see $work/$t.merge.log" >&2
    fi
  fi
done
echo
echo "fuzz summary (${seconds}s per target; logs in $work):"
printf '%s' "$summary"
exit $failed
