#!/usr/bin/env bash
# The compression benchmark: what compressing a 100 KiB JSON answer costs the proxy, corral
# (route key `compress`) against nginx (`gzip on`, nginx-light's gzip filter) at the same
# level, and corral's brotli (nginx-light has no brotli module: no nginx figures for br).
# Both proxies sit in front of the same program (corral-testapp /json?bytes=102400, about
# 5:1 compressible order records): corral's own WORKERS workers, and as many standalone
# corral-testapp processes behind nginx (one upstream keep-alive pool).
# Each proxy: one thread / one worker process, pinned to CPU 0, access log off; wrk, the
# supervisor and the workers run on the other CPUs. For each level: wrk -t1 -cCONNS with
# "Accept-Encoding: gzip" (or br) for SECONDS_PER_RUN after a 1 s warm-up, RUNS runs; the
# identity run (no Accept-Encoding) is the proxying cost without compression.
# Proxy CPU µs/request = utime+stime of the proxy over the run ÷ completed requests; the
# compression cost per KiB = (µs/request − identity µs/request) ÷ 100 (KiB of input).
# Writes BUILD/bench/compress.md and raw files to BUILD/bench/compress-raw/. Starts everything
# it measures itself and stops only that.
#
# usage: tests/bench/compress.sh [BUILD_DIR]
# env:   BENCH_QUICK=1 (1 run of 2 s per level)  RUNS (3)  SECONDS_PER_RUN (5)  WORKERS (2)
#        CONNS (8)  GZIP_LEVELS ("1 4 5 6 9")  BROTLI_LEVELS ("0 1 3 4 5 6")  BYTES (102400)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
bin=$(cd "$build/bin" && pwd)
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
bench_durations 3 5 1 2
workers=${WORKERS:-2}
conns=${CONNS:-8}
bytes=${BYTES:-102400}
gzip_levels=${GZIP_LEVELS:-1 4 5 6 9}
brotli_levels=${BROTLI_LEVELS:-0 1 3 4 5 6}
path="/json?bytes=$bytes"

need_tools "compress bench" wrk curl taskset python3 nginx
bench_begin "compress bench" compress-raw crl-cmpb

# ---- corral: one instance, levels changed by reload ----
cdir=$tmp/corral
mkdir -p "$cdir"
write_corral() {  # gzip_level brotli_level
  { corral_toml_head "$cdir"; cat <<TOML; } > "$cdir/corral.toml"

[[route]]
path = "/"
app = "pool"
compress = ["br", "gzip"]
gzip_level = $1
brotli_level = $2

[app.pool]
kind = "http"
command = ["$bin/corral-testapp"]
workers = $workers
concurrency = 8
TOML
}
write_corral 5 4
corral_start corral "$cdir"
cport=$corral_port cproxy=$corral_proxy
wait_http "$cport" "$path" || { echo "corral does not answer $path" >&2; exit 1; }
reload_corral() {  # gzip_level brotli_level
  write_corral "$1" "$2"
  "$bin/corralctl" --socket "$cdir/run/control.sock" reload > /dev/null
}

# ---- nginx: its own testapp processes, restarted per level ----
ndir=$tmp/nginx
mkdir -p "$ndir"
servers=""
for i in $(seq 1 "$workers"); do
  p=$(free_port)
  taskset -c "$load_cpus" "$bin/corral-testapp" --listen "127.0.0.1:$p" > "$raw/nginx-app.$i.log" 2>&1 &
  started+=("$!")
  servers+="        server 127.0.0.1:$p;"$'\n'
  wait_http "$p" "$path" || { echo "testapp on $p does not answer" >&2; exit 1; }
done
nport=$(free_port)
npid=""
start_nginx() {  # gzip_level
  if [ -n "$npid" ]; then stop_pid "$npid"; forget_pid "$npid"; fi
  cat > "$ndir/nginx.conf" <<CONF
$(nginx_main_head "$ndir")
master_process on;
worker_processes 1;
events { worker_connections 1024; }
http {
$(nginx_http_head "$ndir")
    keepalive_requests 1000000;
    gzip on;
    gzip_comp_level $1;
    gzip_min_length 1024;
    gzip_types application/json;
    gzip_vary on;
    upstream pool {
$servers        keepalive 64;
    }
    server {
        listen 127.0.0.1:$nport;
        location / {
            proxy_pass http://pool;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
CONF
  if [ "$(id -u)" = 0 ]; then sed -i '1i user root;' "$ndir/nginx.conf"; fi
  taskset -c "$proxy_cpu" nginx -p "$ndir" -e "$ndir/error.log" -c "$ndir/nginx.conf" > "$raw/nginx.log" 2>&1 &
  npid=$!
  started+=("$npid")
  wait_http "$nport" "$path" || { echo "nginx does not answer" >&2; cat "$ndir/error.log" >&2; exit 1; }
}
nginx_pids() { echo "$npid"; pgrep -P "$npid" || true; }

# One measurement: target label coding level -> appends
#   target coding level run req/s cpu_us/req body_bytes errors
# to $raw/runs.
measure() {  # target port coding level pids...
  local target=$1 port=$2 coding=$3 level=$4
  shift 4
  local pids=("$@") hdr=() before after f i size
  [ "$coding" != identity ] && hdr=(-H "Accept-Encoding: $coding")
  size=$(curl -s -o /dev/null -w '%{size_download}' "${hdr[@]}" "http://127.0.0.1:$port$path")
  timeout 30 taskset -c "$load_cpus" wrk -t1 -c"$conns" -d1s "${hdr[@]}" "http://127.0.0.1:$port$path" > /dev/null 2>&1 || true
  for i in $(seq 1 "$runs"); do
    f=$raw/$target.$coding.$level.$i.wrk
    before=$(cpu_ticks "${pids[@]}")
    timeout $((dur + 30)) taskset -c "$load_cpus" wrk -t1 -c"$conns" -d"${dur}s" --timeout 10s -s "$here/stats.lua" \
      "${hdr[@]}" "http://127.0.0.1:$port$path" > "$f" 2>&1 || echo "wrk exit $?" >> "$f"
    after=$(cpu_ticks "${pids[@]}")
    awk -v a="$after" -v b="$before" -v c="$clk" -v t="$target" -v co="$coding" -v l="$level" -v i="$i" -v s="$size" "$bench_awk"' /^BENCH / {
        bench_fields()
        n = v["requests"]; found = 1; cpu = "-"
        if (n > 0) cpu = sprintf("%.1f", (a - b) / c * 1e6 / n)
        printf "%s %s %s %d %.0f %s %d %d\n", t, co, l, i, n / (v["duration_us"] / 1e6), cpu, s, v["errors"] + v["status"]}
        END {if (!found) print t, co, l, i, 0, "-", s, -1}' "$f" >> "$raw/runs"
    log "$(tail -1 "$raw/runs")"
  done
}

: > "$raw/runs"
measure corral "$cport" identity - "$cproxy"
for l in $gzip_levels; do
  reload_corral "$l" 4
  measure corral "$cport" gzip "$l" "$cproxy"
done
for q in $brotli_levels; do
  reload_corral 5 "$q"
  measure corral "$cport" br "$q" "$cproxy"
done
start_nginx 1
mapfile -t np < <(nginx_pids)
measure nginx "$nport" identity - "${np[@]}"
for l in $gzip_levels; do
  start_nginx "$l"
  mapfile -t np < <(nginx_pids)
  measure nginx "$nport" gzip "$l" "${np[@]}"
done

# ---- summary ----
med() {  # target coding level field -> median
  awk -v t="$1" -v c="$2" -v l="$3" '$1 == t && $2 == c && $3 == l {print $'"$4"'}' "$raw/runs" | median -
}
row() {  # target coding level -> markdown cells: req/s, µs/req, µs/KiB, bytes, ratio
  local t=$1 c=$2 l=$3 rps cpu id sz
  rps=$(med "$t" "$c" "$l" 5) cpu=$(med "$t" "$c" "$l" 6) sz=$(med "$t" "$c" "$l" 7) id=$(med "$t" identity - 6)
  awk -v r="$rps" -v cpu="$cpu" -v id="$id" -v sz="$sz" -v b="$bytes" 'BEGIN {
      per = (cpu == "-" || id == "-") ? "-" : sprintf("%.2f", (cpu - id) / (b / 1024))
      printf "%s | %s | %s | %s | %.1f %%", r, cpu, per, sz, sz / b * 100}'
}
{
  echo "# Compression: proxy CPU for a $((bytes / 1024)) KiB JSON answer, corral vs nginx gzip"
  echo
  echo "$(bench_env nginx); proxy (1 thread / 1 worker process) pinned to CPU $proxy_cpu."
  echo "wrk -t1 -c$conns -d${dur}s on $path (corral-testapp, $workers processes per proxy); median of $runs runs after a 1 s warm-up."
  echo "CPU = the proxy's utime+stime ÷ requests; per KiB = (CPU − the same proxy's identity CPU) ÷ $((bytes / 1024)) KiB of input."
  echo "corral: windowBits 13 / memLevel 6 for gzip (about 69 KiB per response), lgwin 16 for brotli; nginx: gzip_window and gzip_hash"
  echo "defaults (32 KiB window, 256 KiB per response). nginx-light has no brotli module: br is corral's only."
  echo
  echo "| proxy | coding | level | req/s | proxy CPU µs/req | compression µs/KiB | body bytes | of the original |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|"
  echo "| corral | identity | – | $(row corral identity -) |"
  echo "| nginx | identity | – | $(row nginx identity -) |"
  for l in $gzip_levels; do
    echo "| corral | gzip | $l | $(row corral gzip "$l") |"
    echo "| nginx | gzip | $l | $(row nginx gzip "$l") |"
  done
  for q in $brotli_levels; do echo "| corral | br | $q | $(row corral br "$q") |"; done
} > "$out/compress.md"
cat "$out/compress.md"
