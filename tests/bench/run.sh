#!/usr/bin/env bash
# make bench: wrk against corral (1 proxy thread) in front of a pool of test-app workers on
# Unix sockets, and against one test-app instance directly (TCP) as the baseline.
# Prints req/s, p50, p99, and the proxy's CPU µs per request (utime+stime of corral-proxy
# over the run ÷ requests). Each figure is the median of RUNS interleaved runs.
#
# usage: tests/bench/run.sh [BUILD_DIR]      env: RUNS (3), SECONDS_PER_RUN (10), CONNS (32),
#                                                 WORKERS (4), CONCURRENCY (8), PATH_Q (/)
set -euo pipefail
build=${1:-build}
bin=$(cd "$build/bin" && pwd)
runs=${RUNS:-3}
dur=${SECONDS_PER_RUN:-10}
conns=${CONNS:-32}
workers=${WORKERS:-4}
concurrency=${CONCURRENCY:-8}
path_q=${PATH_Q:-/}
out=$build/bench
mkdir -p "$out"
tmp=$(mktemp -d /tmp/crl-bench-XXXXXX)
ncpu=$(nproc)
proxy_cpu=0
load_cpus=$([ "$ncpu" -gt 1 ] && echo "1-$((ncpu - 1))" || echo 0)
sup_pid=""; app_pid=""
cleanup() {
  [ -n "$sup_pid" ] && kill -TERM "$sup_pid" 2>/dev/null && wait "$sup_pid" 2>/dev/null || true
  [ -n "$app_pid" ] && kill -TERM "$app_pid" 2>/dev/null && wait "$app_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

clk=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

cat > "$tmp/bench.toml" <<TOML
[supervisor]
runtime_dir = "$tmp/run"
log_level = "warn"

[proxy]
threads = 1
access_log = "off"

[[listener]]
address = "127.0.0.1:0"

[[route]]
path = "/"
app = "bench"

[app.bench]
kind = "http"
command = ["$bin/corral-testapp"]
workers = $workers
concurrency = $concurrency
TOML

# corral: the workers and supervisor on the load cores, the proxy alone on core 0.
taskset -c "$load_cpus" "$bin/corral-supervisor" -c "$tmp/bench.toml" 2> "$out/corral.log" &
sup_pid=$!
for _ in $(seq 1 100); do
  status=$("$bin/corralctl" --socket "$tmp/run/control.sock" status --json 2>/dev/null) &&
    echo "$status" | grep -q '"state":"running"' && break
  sleep 0.1
done
corral_port=$(echo "$status" | grep -o '"bound":"[^"]*"' | head -1 | sed 's/.*:\([0-9]*\)"$/\1/')
proxy_pid=$(echo "$status" | grep -o '"proxy":{[^}]*}' | grep -o '"pid":[0-9]*' | grep -o '[0-9]*$')
[ -n "$corral_port" ] && [ -n "$proxy_pid" ] || { echo "bench: corral did not start; log:" >&2; tail -20 "$out/corral.log" >&2; exit 1; }
taskset -pc "$proxy_cpu" "$proxy_pid" > /dev/null
# baseline: one test-app instance on TCP, pinned like a worker
direct_port=$((20000 + RANDOM % 20000))
taskset -c "$load_cpus" "$bin/corral-testapp" --listen "127.0.0.1:$direct_port" > /dev/null 2>&1 &
app_pid=$!
sleep 0.5

run_wrk() {  # name port -> appends "rps p50 p99 requests errors cpu_us" to $out/name.runs
  local name=$1 port=$2 pid=${3:-} before after reqs
  [ -n "$pid" ] && before=$(cpu_ticks "$pid")
  taskset -c "$load_cpus" wrk -t1 -c"$conns" -d"${dur}s" --latency "http://127.0.0.1:$port$path_q" > "$out/$name.wrk.$i" 2>&1
  [ -n "$pid" ] && after=$(cpu_ticks "$pid")
  reqs=$(awk '/requests in/ {print $1}' "$out/$name.wrk.$i")
  local rps p50 p99 errs cpu_us="-"
  rps=$(awk '/Requests\/sec/ {print $2}' "$out/$name.wrk.$i")
  p50=$(awk '$1 == "50%" {print $2}' "$out/$name.wrk.$i")
  p99=$(awk '$1 == "99%" {print $2}' "$out/$name.wrk.$i")
  errs=$(awk '/Non-2xx|Socket errors/ {s = s $0 "; "} END {print (s == "" ? "0" : s)}' "$out/$name.wrk.$i")
  if [ -n "$pid" ] && [ "$reqs" -gt 0 ]; then
    cpu_us=$(awk -v a="$after" -v b="$before" -v c="$clk" -v r="$reqs" 'BEGIN {printf "%.1f", (a - b) / c * 1e6 / r}')
  fi
  echo "$rps $p50 $p99 $reqs $cpu_us $errs" >> "$out/$name.runs"
}

rm -f "$out"/*.runs
for i in $(seq 1 "$runs"); do
  run_wrk corral "$corral_port" "$proxy_pid"
  run_wrk direct "$direct_port"
done

median() { sort -g | awk '{a[NR] = $1} END {if (NR == 0) print "-"; else print a[int((NR + 1) / 2)]}'; }
spread() { sort -g | awk 'NR == 1 {min = $1} {max = $1} END {print min "–" max}'; }
to_us() { awk '{v = $1; if (v ~ /us$/) {sub(/us$/, "", v); print v} else if (v ~ /ms$/) {sub(/ms$/, "", v); print v * 1000} else if (v ~ /s$/) {sub(/s$/, "", v); print v * 1e6} else print v}'; }

{
  echo "## corral bench: HTTP/1.1 keep-alive, wrk -t1 -c$conns -d${dur}s, $workers workers × concurrency $concurrency, $runs runs (median, min–max)"
  echo
  echo "| target | req/s | p50 µs | p99 µs | proxy CPU µs/req | errors |"
  echo "|---|---|---|---|---|---|"
  for name in corral direct; do
    f=$out/$name.runs
    rps=$(cut -d' ' -f1 "$f" | median); rps_s=$(cut -d' ' -f1 "$f" | spread)
    p50=$(cut -d' ' -f2 "$f" | to_us | median); p99=$(cut -d' ' -f3 "$f" | to_us | median)
    cpu=$(cut -d' ' -f5 "$f" | median); cpu_s=$(cut -d' ' -f5 "$f" | spread)
    errs=$(cut -d' ' -f6- "$f" | sort -u | tr '\n' ' ')
    [ "$name" = direct ] && { cpu="-"; cpu_s=""; }
    echo "| $name | $rps ($rps_s) | $p50 | $p99 | $cpu ${cpu_s:+($cpu_s)} | $errs |"
  done
} | tee "$out/summary.md"
