#!/usr/bin/env bash
# The count benchmark: what corral-proxy, HAProxy and nginx each execute per request, counted
# rather than timed, so it holds on a busy or virtual machine where CPU-time figures spread by
# ±15 %: user-space instructions (valgrind's callgrind; no hardware counters needed) and system
# calls (strace -c) per request, under three loads against the same 4 corral-testapp workers on
# Unix sockets (concurrency 8, one proxy thread / process, access log off, as in make bench):
#   h1      wrk -t1 -c32 on /big?bytes=100 (keep-alive)
#   h2tls   h2load -t1 -c32 -m8 over TLS 1.3 (ECDSA P-256), 100 B responses
#   hs      new TLS connections with one request each (h2load -c40 -n40, repeated): per
#           connection, the full handshake included
# Each target is started twice per load: plain for strace, under callgrind for instructions
# (counters zeroed after a warm-up, dumped after the measured run). Kernel time is not in the
# instruction count: compare the syscall column for that side.
# Writes BUILD/bench/instructions.md; raw files in BUILD/bench/instructions-raw/.
#
# usage: tests/bench/instructions.sh [BUILD_DIR]
# env:   LOADS ("h1 h2tls hs")  TARGETS ("corral haproxy nginx")  PROXY (this build's corral-proxy)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
bin=$(cd "$build/bin" && pwd)
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
loads=${LOADS:-h1 h2tls hs}
targets=${TARGETS:-corral haproxy nginx}
proxy_bin=${PROXY:-$bin/corral-proxy}
need_tools "instructions bench" valgrind callgrind_control callgrind_annotate strace wrk h2load haproxy nginx openssl
bench_begin "instructions" instructions-raw crl-instr
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost -keyout "$tmp/key.pem" -out "$tmp/cert.pem" > "$raw/openssl.log" 2>&1
cat "$tmp/cert.pem" "$tmp/key.pem" > "$tmp/both.pem"

# Starts TARGET for LOAD, under callgrind when TOOL is callgrind; sets pid (the process to
# count), port and dir. The apps of HAProxy and nginx: 4 corral-testapp on Unix sockets.
start_target() {  # tool target load
  local tool=$1 target=$2 load=$3 grind=()
  dir=$tmp/$tool-$target-$load
  mkdir -p "$dir"
  port=$(free_port)
  [ "$tool" = callgrind ] && grind=(valgrind --tool=callgrind "--callgrind-out-file=$dir/cg.out")
  if [ "$target" = corral ]; then
    printf '#!/bin/sh\nexec %s %s "$@"\n' "${grind[*]}" "$proxy_bin" > "$dir/proxy.sh"
    chmod 755 "$dir/proxy.sh"
    {
      printf '[supervisor]\nruntime_dir = "%s/run"\nlog_level = "warn"\nproxy_timeout = "300s"\n' "$dir"
      printf '[proxy]\nthreads = 1\naccess_log = "off"\n[[listener]]\naddress = "127.0.0.1:%s"\n' "$port"
      [ "$load" != h1 ] && printf 'tls = { cert = "%s/cert.pem", key = "%s/key.pem" }\n' "$tmp" "$tmp"
      printf '[[route]]\npath = "/"\napp = "pool"\n[app.pool]\nkind = "http"\ncommand = ["%s/corral-testapp"]\nworkers = 4\nconcurrency = 8\n' "$bin"
    } > "$dir/corral.toml"
    CORRAL_PROXY_BIN=$dir/proxy.sh "$bin/corral-supervisor" -c "$dir/corral.toml" 2> "$raw/$tool-$target-$load.log" &
    sup=$!
    started+=("$sup")
    local st=""
    for _ in $(seq 1 600); do
      st=$("$bin/corralctl" --socket "$dir/run/control.sock" status --json 2>/dev/null) && grep -q '"state":"running"' <<< "$st" && break
      sleep 0.1
    done
    pid=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["proxy"]["pid"])' "$st")
    stop_target() { stop_pid "$sup"; forget_pid "$sup"; }
    return
  fi
  local i apps=()
  for i in 0 1 2 3; do
    "$bin/corral-testapp" --unix "$dir/w$i.sock" 2> /dev/null &
    apps+=($!)
    started+=($!)
  done
  for _ in $(seq 1 50); do [ -S "$dir/w3.sock" ] && break; sleep 0.1; done
  if [ "$target" = haproxy ]; then
    local bind="bind 127.0.0.1:$port"
    [ "$load" != h1 ] && bind="$bind ssl crt $tmp/both.pem alpn h2,http/1.1"
    cat > "$dir/haproxy.cfg" <<CFG
global
    nbthread 1
    maxconn 4000
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 75s
    timeout server 60s
    timeout queue 10s
    option forwardfor
frontend f
    $bind
    http-request set-header X-Forwarded-Proto %[ssl_fc,iif(https,http)]
    default_backend pool
backend pool
    balance leastconn
$(for i in 0 1 2 3; do echo "    server w$i unix@$dir/w$i.sock maxconn 8"; done)
CFG
    "${grind[@]}" haproxy -f "$dir/haproxy.cfg" -db 2> "$raw/$tool-$target-$load.log" &
  else
    local listen="listen 127.0.0.1:$port"
    [ "$load" != h1 ] && listen="$listen ssl http2"
    mkdir -p "$dir/tmp"
    cat > "$dir/nginx.conf" <<CFG
daemon off;
master_process off;  # one process to count (the bench's worker_processes 1)
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/tmp; proxy_temp_path $dir/tmp; fastcgi_temp_path $dir/tmp;
    uwsgi_temp_path $dir/tmp; scgi_temp_path $dir/tmp;
    keepalive_requests 1000000;
    ssl_protocols TLSv1.2 TLSv1.3;
    upstream pool {
$(for i in 0 1 2 3; do echo "        server unix:$dir/w$i.sock;"; done)
        keepalive 64;
    }
    server {
        $listen;
        ssl_certificate $tmp/cert.pem;
        ssl_certificate_key $tmp/key.pem;
        location / {
            proxy_pass http://pool;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
    }
}
CFG
    "${grind[@]}" nginx -c "$dir/nginx.conf" -e "$dir/error.log" 2> "$raw/$tool-$target-$load.log" &
  fi
  pid=$!
  started+=("$pid")
  target_apps=("${apps[@]}")
  stop_target() {
    local p
    for p in "$pid" "${target_apps[@]}"; do stop_pid "$p"; forget_pid "$p"; done
  }
}

# Runs LOAD against port for about SECONDS; prints the requests completed.
run_load() {  # load seconds
  local scheme=https n
  [ "$1" = h1 ] && scheme=http
  for _ in $(seq 1 300); do curl -sk -o /dev/null "$scheme://127.0.0.1:$port/big?bytes=100" && break; sleep 0.1; done
  case $1 in
    h1) wrk -t1 -c32 -d"$2"s "http://127.0.0.1:$port/big?bytes=100" > "$dir/load.txt"
        awk '/requests in/ {print $1}' "$dir/load.txt" ;;
    h2tls) h2load -t1 -c32 -m8 -D "$2" "https://127.0.0.1:$port/big?bytes=100" > "$dir/load.txt" 2>&1
        awk '/^requests:/ {print $8}' "$dir/load.txt" ;;
    hs) n=0
        for _ in $(seq 1 "$2"); do
          h2load -t1 -c40 -n40 -m1 "https://127.0.0.1:$port/big?bytes=100" > "$dir/load.txt" 2>&1
          n=$((n + $(awk '/^requests:/ {print $8}' "$dir/load.txt")))
        done
        echo "$n" ;;
  esac
}

declare -A instr sys top
for load in $loads; do
  for target in $targets; do
    log "$target $load: syscalls"
    start_target strace "$target" "$load"
    run_load "$load" 2 > /dev/null  # warm-up: connections, heaps, upstream connections
    strace -c -f -p "$pid" -o "$dir/strace.txt" 2> /dev/null &
    tracer=$!
    sleep 0.5
    req=$(run_load "$load" 5)
    kill -INT "$tracer"; wait "$tracer" || true
    cp "$dir/strace.txt" "$raw/strace-$target-$load.txt"
    sys[$target.$load]=$(awk -v r="$req" '$NF == "total" {printf "%.2f", $4 / r}' "$dir/strace.txt")
    top[$target.$load]=$(awk -v r="$req" 'NR > 2 && $4 ~ /^[0-9]+$/ && $NF != "total" && $4 / r >= 0.05 {printf "%s%s %.2f", sep, $NF, $4 / r; sep = ", "}' "$dir/strace.txt")
    stop_target

    log "$target $load: instructions"
    start_target callgrind "$target" "$load"
    run_load "$load" 3 > /dev/null
    callgrind_control -z "$pid" > /dev/null
    req=$(run_load "$load" 10)
    callgrind_control -d "$pid" > /dev/null
    sleep 1
    f=$(ls -t "$dir"/cg.out.* | head -1)
    ir=$(callgrind_annotate "$f" 2> /dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
    cp "$f" "$raw/callgrind-$target-$load.out"
    instr[$target.$load]=$((ir / req))
    stop_target
  done
done

{
  echo "# Instructions and system calls per request"
  echo
  echo "| load | target | user-space instructions per request | system calls per request | the most frequent (per request) |"
  echo "|---|---|---:|---:|---|"
  for load in $loads; do
    for target in $targets; do
      echo "| $load | $target | ${instr[$target.$load]} | ${sys[$target.$load]} | ${top[$target.$load]} |"
    done
  done
  echo
  echo "h1: wrk -c32 keep-alive, 100 B; h2tls: h2load -c32 -m8, TLS 1.3, 100 B; hs: a new TLS connection (ECDSA P-256, full handshake) per request. Instructions: callgrind, after a warm-up. System calls: strace -c over 5 s. $(date -u +%F), $(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo '?')."
} > "$out/instructions.md"
cat "$out/instructions.md"
