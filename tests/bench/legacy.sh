#!/usr/bin/env bash
# The legacy-app benchmark: the same tiny C program (tests/apps/fcgi/hello.c, libfcgi) as a CGI
# program and as a FastCGI pool, each under corral and under the usual nginx glue:
#   cgi      corral (kind = "cgi", corral-worker runs it per request)  vs  nginx + fcgiwrap
#   fastcgi  corral (kind = "fastcgi", WORKERS processes)              vs  nginx + spawn-fcgi
#            (the same binary, WORKERS processes on one socket; nginx's default: one FastCGI
#            connection per request, since a libfcgi responder serves one connection at a time)
# Workload: wrk -t1 -cCONNS GET /hello for SECONDS_PER_RUN. Prints req/s, p99 and the front
# tier's CPU per request (corral-proxy, plus corral-worker for cgi; nginx, plus fcgiwrap for
# cgi; the C program itself is not counted). Writes BUILD/bench/legacy.md and raw files to
# BUILD/bench/legacy-raw/. Starts everything it measures itself and stops only that.
#
# usage: tests/bench/legacy.sh [BUILD_DIR]
# env:   BENCH_QUICK=1 (2 s runs)  SECONDS_PER_RUN (8)  WORKERS (2)  CGI_CONCURRENCY (8)  CONNS (16)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
bin=$(cd "$build/bin" && pwd)
dur=${SECONDS_PER_RUN:-8}
[ "${BENCH_QUICK:-0}" = 1 ] && dur=${SECONDS_PER_RUN:-2}
workers=${WORKERS:-2}
cgi_conc=${CGI_CONCURRENCY:-8}
conns=${CONNS:-16}
hello=$bin/corral-fcgi-hello

for tool in wrk nginx fcgiwrap spawn-fcgi curl; do
  command -v "$tool" > /dev/null || { echo "legacy bench: $tool is missing (packaging/install-deps.sh bench)" >&2; exit 1; }
done
[ -x "$hello" ] || { echo "legacy bench: $hello is missing (libfcgi-dev)" >&2; exit 1; }
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
bench_begin "legacy bench" legacy-raw crl-legb
clk=$(getconf CLK_TCK)

# Runs wrk against port $2 while counting the CPU of pids $3..; appends a row for label $1.
measure() {
  local label=$1 port=$2
  shift 2
  local f=$raw/$label.wrk before after
  timeout $((dur + 30)) wrk -t1 -c4 -d1s "http://127.0.0.1:$port/hello" > /dev/null 2>&1 || true
  before=$(cpu_ticks "$@")
  timeout $((dur + 30)) wrk -t1 -c"$conns" -d"${dur}s" --timeout 10s -s "$here/stats.lua" \
    "http://127.0.0.1:$port/hello" > "$f" 2>&1 || echo "wrk exit $?" >> "$f"
  after=$(cpu_ticks "$@")
  awk -v a="$after" -v b="$before" -v c="$clk" -v label="$label" '/^BENCH / {
      for (i = 2; i <= NF; i++) {split($i, kv, "="); v[kv[1]] = kv[2]}
      n = v["requests"]; found = 1; cpu = 0
      if (n > 0) cpu = (a - b) / c * 1e6 / n
      printf "%s %.0f %.1f %.1f %d\n", label, n / (v["duration_us"] / 1e6), v["p99"] / 1000, cpu, v["errors"] + v["status"]}
      END {if (!found) print label, 0, "-", "-", -1}' "$f" >> "$raw/rows"
  log "$label: $(tail -1 "$raw/rows")"
}

start_corral() {  # name kind-specific-toml -> sets c_port c_pid c_front (pids)
  local name=$1 dir=$tmp/$1
  mkdir -p "$dir"
  cat > "$dir/corral.toml" <<TOML
[supervisor]
runtime_dir = "$dir/run"

[proxy]
threads = 1
access_log = "off"

[[listener]]
address = "127.0.0.1:0"

[[route]]
path = "/hello"
app = "hello"

[app.hello]
$2
queue_size = 100000
queue_timeout = "60s"
TOML
  "$bin/corral-supervisor" -c "$dir/corral.toml" 2> "$raw/corral.$name.log" &
  c_pid=$!
  started+=("$c_pid")
  local status=""
  for _ in $(seq 1 300); do
    kill -0 "$c_pid" 2>/dev/null || { tail -20 "$raw/corral.$name.log" >&2; exit 1; }
    status=$("$bin/corralctl" --socket "$dir/run/control.sock" status --json 2>/dev/null) && break
    sleep 0.1
  done
  c_port=$(echo "$status" | python3 -c 'import json, sys; print(json.load(sys.stdin)["listeners"][0]["bound"].rsplit(":", 1)[1])')
  wait_http "$c_port" /hello || { echo "corral ($name) did not come up" >&2; tail -20 "$raw/corral.$name.log" >&2; exit 1; }
  c_front=$(pgrep -P "$c_pid" -f 'corral-(proxy|worker)' | tr '\n' ' ')
}

start_nginx() {  # name location-body -> sets n_port n_pid
  local name=$1 dir=$tmp/nginx-$1
  n_port=$(free_port)
  mkdir -p "$dir"
  cat > "$dir/nginx.conf" <<NGINX
daemon off;
user $(id -un);
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$n_port backlog=4096;
        location /hello {
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $hello;
            $2
        }
    }
}
NGINX
  nginx -c "$dir/nginx.conf" -p "$dir" 2> "$raw/nginx.$name.log" &
  n_pid=$!
  started+=("$n_pid")
  wait_http "$n_port" /hello || { echo "nginx ($name) did not come up" >&2; cat "$dir/error.log" >&2; exit 1; }
}

# ---- CGI ----
start_corral cgi "kind = \"cgi\"
command = [\"$hello\"]
workers = 1
concurrency = $cgi_conc"
measure "cgi.corral" "$c_port" $c_front
stop_pid "$c_pid"

fsock=$tmp/fcgiwrap.sock
fcgiwrap -c "$cgi_conc" -s "unix:$fsock" 2> "$raw/fcgiwrap.log" &
fw_pid=$!
started+=("$fw_pid")
for _ in $(seq 1 100); do [ -S "$fsock" ] && break; sleep 0.05; done
start_nginx cgi "fastcgi_pass unix:$fsock;"
measure "cgi.nginx+fcgiwrap" "$n_port" "$n_pid" $(pgrep -P "$n_pid") "$fw_pid" $(pgrep -P "$fw_pid")
stop_pid "$n_pid"
stop_pid "$fw_pid"

# ---- FastCGI ----
start_corral fastcgi "kind = \"fastcgi\"
command = [\"$hello\"]
workers = $workers"
measure "fastcgi.corral" "$c_port" $c_front
stop_pid "$c_pid"

psock=$tmp/pool.sock
spawn-fcgi -n -F "$workers" -s "$psock" -- "$hello" > "$raw/spawn-fcgi.log" 2>&1 &
sp_pid=$!
started+=("$sp_pid")
for _ in $(seq 1 100); do [ -S "$psock" ] && break; sleep 0.05; done
start_nginx fastcgi "fastcgi_pass unix:$psock;"
measure "fastcgi.nginx+pool" "$n_port" "$n_pid" $(pgrep -P "$n_pid")
stop_pid "$n_pid"
pkill -TERM -P "$sp_pid" 2>/dev/null || true
stop_pid "$sp_pid"

{
  echo "# Legacy apps: corral vs nginx glue ($(nproc) cores, ${dur}s, $conns connections, $workers FastCGI processes, CGI concurrency $cgi_conc)"
  echo
  echo "| run | server | req/s | p99 ms | front CPU µs/req | errors |"
  echo "|---|---|---:|---:|---:|---:|"
  awk '{split($1, p, "."); printf "| %s | %s | %s | %s | %s | %s |\n", p[1], p[2], $2, $3, $4, $5}' "$raw/rows"
  echo
  awk '{r[$1] = $2} END {
    if (r["cgi.nginx+fcgiwrap"] > 0) printf "CGI: corral / nginx+fcgiwrap = %.2f× (aim ≥ 1.2×)\n", r["cgi.corral"] / r["cgi.nginx+fcgiwrap"];
    if (r["fastcgi.nginx+pool"] > 0) printf "FastCGI: corral / nginx+pool = %.2f× (aim ≥ 1.0×)\n", r["fastcgi.corral"] / r["fastcgi.nginx+pool"] }' "$raw/rows"
} | tee "$out/legacy.md"
