#!/usr/bin/env bash
# make bench-profile: where corral-proxy spends its CPU under scenario 1's load (HTTP/1.1
# keep-alive, 100 B, wrk -t1 -c32), scenario 2's (HTTP/2 over TLS 1.3, 100 B, h2load -t1
# -c32 -m8) and scenario 7's (new TLS 1.3 connections with full ECDSA handshakes, one request
# each, tls_conns.py), as SVG flame graphs. One corral (one proxy thread pinned to CPU 0, access log off,
# app `pool`: WORKERS corral-testapp workers, concurrency CONCURRENCY, as in peers/corral.toml.in)
# with a plaintext and a TLS listener (ECDSA P-256); the load on the other CPUs. For each load:
# a 1 s warm-up, then `perf record -e cpu-clock` on the proxy process for PROFILE_SECONDS while the
# load runs, `perf script`, and flamegraph.py. cpu-clock because the hardware counters are missing
# on many virtual machines; it samples where the CPU time goes, at PERF_FREQ Hz.
#
# Writes BUILD/bench/profiles/{h1,h2tls,handshake}-COMMIT.svg (COMMIT: the source tree's short hash, with
# -dirty when it has changes), the folded stacks next to them, a text summary of each
# (profile_summary.py: kernel share, time per system call, hottest functions), and the load's figures.
#
# usage: tests/bench/profile.sh [BUILD_DIR]
# env:   PROFILE_SECONDS (10; BENCH_QUICK=1: 3)  PERF_FREQ (997)  CALL_GRAPH (dwarf: unwinds through
#        the distribution's libraries built without frame pointers; fp is lighter)  WORKERS (4)
#        CONCURRENCY (8)  CONNS (32)  H2_STREAMS (8)  PROFILE_COMMIT (the name in the file names;
#        default: the source tree's short hash)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
bin=$(cd "$build/bin" && pwd)
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
seconds=${PROFILE_SECONDS:-10}
[ "${BENCH_QUICK:-0}" = 1 ] && seconds=${PROFILE_SECONDS:-3}
freq=${PERF_FREQ:-997}
call_graph=${CALL_GRAPH:-dwarf}
workers=${WORKERS:-4}
concurrency=${CONCURRENCY:-8}
conns=${CONNS:-32}
h2_streams=${H2_STREAMS:-8}

need_tools "bench profile" perf wrk h2load openssl taskset python3
bench_begin "bench profile" profile-raw crl-prof
commit=${PROFILE_COMMIT:-$(git -C "$here" describe --always --dirty 2>/dev/null || echo unknown)}
profiles=$out/profiles
mkdir -p "$profiles"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost -keyout "$tmp/key.pem" -out "$tmp/cert.pem" > "$raw/openssl.log" 2>&1
corral_pool_toml "$tmp" "" "$tmp/cert.pem" "$tmp/key.pem" > "$tmp/corral.toml"
corral_start corral "$tmp"
tls_port=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["listeners"][1]["bound"].rsplit(":", 1)[-1])' \
  "$raw/corral.status.json")
wait_http "$corral_port" "/big?bytes=100" || { echo "corral does not answer" >&2; exit 1; }

# One load for `seconds`+2 s with perf attached to the proxy for `seconds` after the first.
profile() {  # name title command...
  local name=$1 title=$2 load_pid
  shift 2
  "$@" 1 > "$raw/$name.warm" 2>&1 || true
  "$@" $((seconds + 2)) > "$raw/$name.load" 2>&1 &
  load_pid=$!
  sleep 1
  log "$name: perf record -e cpu-clock -F $freq --call-graph $call_graph on corral-proxy $corral_proxy for ${seconds}s"
  perf record -q -e cpu-clock -F "$freq" --call-graph "$call_graph" -p "$corral_proxy" -o "$raw/$name.perf.data" \
    -- sleep "$seconds" 2> "$raw/$name.perf.log"
  wait "$load_pid" || true
  perf script -i "$raw/$name.perf.data" 2> "$raw/$name.script.log" |
    python3 "$here/flamegraph.py" --title "$title — corral $commit" --folded "$profiles/$name-$commit.folded" \
    > "$profiles/$name-$commit.svg"
  rm -f "$raw/$name.perf.data"
  python3 "$here/profile_summary.py" "$profiles/$name-$commit.folded" > "$profiles/$name-$commit.summary.txt" || true
  log "$name: $profiles/$name-$commit.svg ($(wc -l < "$profiles/$name-$commit.folded") distinct stacks; summary in $name-$commit.summary.txt)"
}
h1_load() {  # seconds
  timeout $(($1 + 20)) taskset -c "$load_cpus" wrk -t1 -c"$conns" -d"$1s" -H "Host: bench" \
    "http://127.0.0.1:$corral_port/big?bytes=100"
}
h2_load() {  # seconds
  timeout $(($1 + 30)) taskset -c "$load_cpus" h2load -t1 -c"$conns" -m"$h2_streams" -D "$1" \
    "https://127.0.0.1:$tls_port/big?bytes=100"
}
hs_load() {  # seconds
  timeout $(($1 + 30)) taskset -c "$load_cpus" python3 "$here/tls_conns.py" --port "$tls_port" --procs 4 --seconds "$1"
}
profile h1 "HTTP/1.1 keep-alive, 100 B (wrk -t1 -c$conns), corral-proxy on 1 CPU" h1_load
profile h2tls "HTTP/2 over TLS 1.3, 100 B (h2load -t1 -c$conns -m$h2_streams), corral-proxy on 1 CPU" h2_load
profile handshake "New TLS 1.3 connections, full ECDSA P-256 handshakes, one request each (tls_conns.py, 4 clients), corral-proxy on 1 CPU" hs_load
grep -h "^Requests/sec\|^requests:\|^finished in\|^BENCH" "$raw/h1.load" "$raw/h2tls.load" "$raw/handshake.load" >&2 || true
echo "$profiles/h1-$commit.svg"
echo "$profiles/h2tls-$commit.svg"
echo "$profiles/handshake-$commit.svg"
