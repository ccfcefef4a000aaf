#!/usr/bin/env bash
# The static-file benchmark: a 1 KiB and a 1 MiB file served by corral-proxy itself
# ([[route]] static = DIR: sendfile on plaintext, the per-thread open-file cache) against nginx
# (Debian's nginx-light, sendfile on, tcp_nopush on) on the same machine, two ways:
#   nginx      the stock setting: no open_file_cache (open + fstat + close per request)
#   nginx+ofc  open_file_cache max=1000 inactive=20s, open_file_cache_valid 1s (what corral's
#              cache does: a file is looked up again at most once a second)
# Each server: one process/thread pinned to CPU 0, access log off; wrk and the supervisor on
# the other CPUs. Workload: wrk -t1 -cCONNS keep-alive on the file for SECONDS_PER_RUN after a
# 1 s unrecorded warm-up; runs interleaved (corral, nginx, nginx+ofc, corral, ...). Proxy CPU
# µs/request = utime+stime of the server's processes over the run ÷ completed requests (the
# method of run.sh); medians (min–max), and the verdict against the aim: corral ≤ nginx.
# Writes BUILD/bench/static.md and raw files to BUILD/bench/static-raw/. Starts everything it
# measures itself and stops only that.
#
# usage: tests/bench/static.sh [BUILD_DIR]
# env:   BENCH_QUICK=1 (2 runs of 2 s)  RUNS (5)  SECONDS_PER_RUN (6)  CONNS (32)
#        STATIC_TARGETS ("corral nginx nginx+ofc")
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
bin=$(cd "$build/bin" && pwd)
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
bench_durations 5 6 2 2
conns=${CONNS:-32}
targets=${STATIC_TARGETS:-corral nginx nginx+ofc}

need_tools "static bench" wrk curl taskset python3
bench_begin "static bench" static-raw crl-stat

site=$tmp/site
mkdir -p "$site"
head -c 1024 /dev/urandom > "$site/1k.bin"
head -c $((1 << 20)) /dev/urandom > "$site/1m.bin"
chmod -R a+rX "$tmp"
files="1k.bin 1m.bin"

declare -A port pid
start_corral() {
  local dir=$tmp/corral
  mkdir -p "$dir"
  { corral_toml_head "$dir"; cat <<TOML; } > "$dir/corral.toml"

[[route]]
path = "/"
static = "$site"
TOML
  corral_start corral "$dir" '"bound"'  # no app: ready once the listener is bound
  wait_http "$corral_port" /1k.bin || { echo "corral does not answer /1k.bin" >&2; tail -20 "$raw/corral.log" >&2; exit 1; }
  port[corral]=$corral_port pid[corral]=$corral_proxy
}

start_nginx() {  # name extra-http-directives
  local name=$1 dir=$tmp/$1 exe p
  exe=$(command -v nginx || true)
  [ -n "$exe" ] || { log "$name: nginx is not installed (make bench installs nginx-light); skipped"; return; }
  mkdir -p "$dir"
  p=$(free_port)
  cat > "$dir/nginx.conf" <<CONF
$(nginx_main_head "$dir")
master_process on;
worker_processes 1;
events { worker_connections 4096; multi_accept on; }
http {
$(nginx_http_head "$dir")
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    sendfile on;
    tcp_nopush on;
    default_type application/octet-stream;
    etag on;
    $2
    server {
        listen 127.0.0.1:$p backlog=4096;
        location / { root $site; }
    }
}
CONF
  cp "$dir/nginx.conf" "$raw/$name.conf"
  taskset -c "$proxy_cpu" "$exe" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" > "$raw/$name.log" 2>&1 &
  local master=$!
  started+=("$master")
  wait_http "$p" /1k.bin || { echo "$name does not answer; log:" >&2; cat "$raw/$name.log" "$dir/error.log" >&2; exit 1; }
  port[$name]=$p pid[$name]=$master
  log "$name: master $master, 127.0.0.1:$p"
}

for t in $targets; do
  case $t in
    corral) start_corral ;;
    nginx) start_nginx nginx "" ;;
    nginx+ofc) start_nginx nginx+ofc "open_file_cache max=1000 inactive=20s; open_file_cache_valid 1s; open_file_cache_errors on;" ;;
    *) echo "static bench: unknown target $t" >&2; exit 1 ;;
  esac
done

# One run: wrk on target $1, file $2; appends "target file run req/s p50_us p99_us cpu_us/req
# errors MiB/s" to $raw/runs.
measure() {  # target file run warm(0/1)
  local t=$1 file=$2 i=$3 d=$dur f before after pids
  [ -n "${port[$t]:-}" ] || return 0
  [ "$4" = 1 ] && d=1
  f=$raw/$t.$file.$i.wrk
  pids=$(echo "${pid[$t]}"; pgrep -P "${pid[$t]}" || true)
  # shellcheck disable=SC2086
  before=$(cpu_ticks $pids)
  timeout $((d + 30)) taskset -c "$load_cpus" wrk -t1 -c"$conns" -d"${d}s" --timeout 10s -s "$here/stats.lua" \
    "http://127.0.0.1:${port[$t]}/$file" > "$f" 2>&1 || echo "wrk exit $?" >> "$f"
  # shellcheck disable=SC2086
  after=$(cpu_ticks $pids)
  [ "$4" = 1 ] && { rm -f "$f"; return; }
  local size
  size=$(stat -c %s "$site/$file")
  awk -v a="$after" -v b="$before" -v c="$clk" -v t="$t" -v file="$file" -v i="$i" -v sz="$size" "$bench_awk"' /^BENCH / {
      bench_fields()
      n = v["requests"]; found = 1; cpu = "-"
      if (n > 0) cpu = sprintf("%.2f", (a - b) / c * 1e6 / n)
      rps = n / (v["duration_us"] / 1e6)
      printf "%s %s %d %.0f %d %d %s %d %.0f\n", t, file, i, rps, v["p50"], v["p99"], cpu, v["errors"] + v["status"], rps * sz / 1048576}
      END {if (!found) print t, file, i, 0, 0, 0, "-", -1, 0}' "$f" >> "$raw/runs"
  log "run $i/$runs $t $file: $(tail -1 "$raw/runs" | cut -d' ' -f4-)"
}

# The same bytes from each (checked once before measuring).
for t in $targets; do
  [ -n "${port[$t]:-}" ] || continue
  for file in $files; do
    cmp -s <(curl -s "http://127.0.0.1:${port[$t]}/$file") "$site/$file" ||
      { echo "static bench: $t serves /$file wrong" >&2; exit 1; }
  done
done

: > "$raw/runs"
for file in $files; do
  for t in $targets; do measure "$t" "$file" 0 1; done
  for i in $(seq 1 "$runs"); do
    for t in $targets; do measure "$t" "$file" "$i" 0; done
  done
done

# ---- summary ----
field() { awk -v t="$1" -v f="$2" '$1 == t && $2 == f {print $'"$3"'}' "$raw/runs"; }  # target file field -> its values
col() { field "$1" "$2" "$3" | median_range; }
med() { field "$1" "$2" "$3" | median; }
{
  echo "# Static files: corral-proxy against nginx"
  echo
  echo "$(bench_env nginx); the server (1 thread / 1 worker) pinned to CPU $proxy_cpu, wrk on CPU $load_cpus."
  echo "wrk -t1 -c$conns -d${dur}s, keep-alive, plaintext HTTP/1.1; median of $runs interleaved runs after a 1 s warm-up, (min–max)."
  echo "CPU = utime+stime of the server's processes ÷ requests. nginx: sendfile on, tcp_nopush on; nginx+ofc adds open_file_cache (valid 1s)."
  echo
  echo "| file | server | req/s | MiB/s | p50 µs | p99 µs | server CPU µs/req | errors |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|"
  for file in $files; do
    for t in $targets; do
      [ -n "${port[$t]:-}" ] || continue
      echo "| $file | $t | $(col "$t" "$file" 4) | $(col "$t" "$file" 9) | $(col "$t" "$file" 5) | $(col "$t" "$file" 6) | $(col "$t" "$file" 7) | $(col "$t" "$file" 8) |"
    done
  done
  echo
  for file in $files; do
    c=$(med corral "$file" 7)
    for t in nginx nginx+ofc; do
      n=$(med "$t" "$file" 7)
      [ -n "$c" ] && [ -n "$n" ] || continue
      awk -v c="$c" -v n="$n" -v f="$file" -v t="$t" 'BEGIN {
        printf "%s: corral %.2f µs/req vs %s %.2f µs/req (%+.0f %%) — aim corral ≤ %s: %s\n", f, c, t, n, (c / n - 1) * 100, t, (c <= n ? "met" : "**not met**")}'
    done
  done
} | tee "$out/static.md"
