# shellcheck shell=bash disable=SC2154  # `build` is set by the script that sources this
# Shared by the side benchmarks (legacy.sh, wsgi.sh): output folders, the processes a run
# started and their clean stop, ports, readiness, CPU ticks. Source it after setting
# `build`; then call bench_begin NAME RAW_SUBDIR TMP_PREFIX.

# Sets out (BUILD/bench), raw (a fresh out/RAW_SUBDIR), tmp (a scratch folder removed on
# exit) and the log prefix; installs the exit trap that stops everything in `started`.
bench_begin() {  # name raw_subdir tmp_prefix
  bench_name=$1
  out=$(mkdir -p "$build/bench" && cd "$build/bench" && pwd)
  raw=$out/$2
  rm -rf "$raw" && mkdir -p "$raw"
  tmp=$(mktemp -d "/tmp/$3-XXXXXX")
  chmod 755 "$tmp"
  started=()  # pids we own
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}
log() { printf '[%s %s] %s\n' "$bench_name" "$(date +%T)" "$*" >&2; }

stop_pid() {  # pid: TERM, wait up to 10 s, then KILL
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
bench_cleanup() {
  local p
  for p in "${started[@]}"; do stop_pid "$p"; done
  rm -rf "$tmp"
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_http() {  # port path: until GET answers 200 (≤ 30 s)
  for _ in $(seq 1 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1$2" 2>/dev/null)" = 200 ] && return 0
    sleep 0.1
  done
  return 1
}
cpu_ticks() {  # pids... -> utime+stime summed
  local p sum=0 t
  for p in "$@"; do
    t=$(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$p/stat" 2>/dev/null || echo 0)
    sum=$((sum + t))
  done
  echo "$sum"
}
