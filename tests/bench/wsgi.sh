#!/usr/bin/env bash
# The WSGI benchmark: the same Flask app (tests/apps/wsgi_flask) under corral (kind = "wsgi",
# corral-proxy in front of corral-worker, which runs the app on /usr/bin/python3 with its WSGI
# host as an extension module) and under Gunicorn behind nginx (Debian's gunicorn and nginx,
# upstream keep-alive over a Unix socket), with the same worker counts, for each worker class:
# sync (WORKERS × 1), gthread (WORKERS × THREADS) and gevent (WORKERS × GREENLETS).
# SERVERS may add corral-embedded: corral with CORRAL_WSGI_EMBEDDED=1, the app on the
# libpython3.11.so embedded in corral-worker (workers/wsgi/interpreter.h).
# Workloads (wrk -t1, latencies from stats.lua):
#   fast   GET /                 CONNS connections
#   cpu    GET /cpu?n=CPU_N      CONNS connections (pure-Python loop: needs processes)
#   mixed  GET / from FAST_CONNS connections while SLOW_CONNS connections keep
#          GET /sleep?ms=SLOW_MS in flight; the figures are the fast requests'
# For cpu, also the app processes' CPU time per request (utime + stime of the workers over
# the run / requests): what the interpreter costs, unlike req/s unmoved by other load on the
# machine.
# ROUNDS > 1 repeats every (class, server) run that many times, interleaved (round 1 of each,
# then round 2, ...), and reports medians with the range.
# Prints req/s and p99 per (class, server, workload); writes BUILD/bench/wsgi.md and raw files
# to BUILD/bench/wsgi-raw/. Starts everything it measures itself (loopback, temp dir) and
# stops only that.
#
# usage: tests/bench/wsgi.sh [BUILD_DIR]
# env:   BENCH_QUICK=1 (2 s runs)  SECONDS_PER_RUN (8)  CLASSES ("sync gthread gevent")
#        WORKERS (2)  THREADS (4)  GREENLETS (32)  CONNS (16)  FAST_CONNS (8)  SLOW_MS (200)
#        CPU_N (20000)  ROUNDS (1)  SERVERS ("corral gunicorn+nginx"; also corral-embedded)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-build}
bin=$(cd "$build/bin" && pwd)
dur=${SECONDS_PER_RUN:-8}
[ "${BENCH_QUICK:-0}" = 1 ] && dur=${SECONDS_PER_RUN:-2}
classes=${CLASSES:-sync gthread gevent}
workers=${WORKERS:-2}
threads=${THREADS:-4}
greenlets=${GREENLETS:-32}
conns=${CONNS:-16}
fast_conns=${FAST_CONNS:-8}
slow_ms=${SLOW_MS:-200}
cpu_n=${CPU_N:-20000}
rounds=${ROUNDS:-1}
servers=${SERVERS:-corral gunicorn+nginx}
app_dir=$root/tests/apps/wsgi_flask
python=/usr/bin/python3

for tool in wrk gunicorn nginx; do
  command -v "$tool" > /dev/null || { echo "wsgi bench: $tool is missing (packaging/install-deps.sh bench)" >&2; exit 1; }
done
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
bench_begin "wsgi bench" wsgi-raw crl-wsgib

wrk_run() {  # file conns url
  timeout $((dur + 30)) wrk -t1 -c"$2" -d"${dur}s" --timeout 10s -s "$here/stats.lua" "$3" > "$1" 2>&1 ||
    echo "wrk exit $?" >> "$1"
}
wrk_requests() {  # file -> requests
  awk '/^BENCH / {for (i = 2; i <= NF; i++) {split($i, kv, "="); if (kv[1] == "requests") print kv[2]}}' "$1"
}
wrk_line() {  # file -> "rps p99_ms errors"
  awk '/^BENCH / {for (i = 2; i <= NF; i++) {split($i, kv, "="); v[kv[1]] = kv[2]}
       printf "%.0f %.1f %d\n", v["requests"] / (v["duration_us"] / 1e6), v["p99"] / 1000, v["errors"] + v["status"]; found = 1}
       END {if (!found) print "0 - -1"}' "$1"
}

# The concurrency per worker of a class, and Gunicorn's flags for it.
per_worker() { case $1 in sync) echo 1 ;; gthread) echo "$threads" ;; gevent) echo "$greenlets" ;; esac; }
gunicorn_flags() {
  case $1 in
    sync) echo "-k sync" ;;
    gthread) echo "-k gthread --threads $threads" ;;
    gevent) echo "-k gevent --worker-connections $greenlets" ;;
  esac
}

# The app's processes: corral's workers (from the status at $app_sock), Gunicorn's (the
# children of $app_master).
# Never fails: a missing figure must not end the run.
app_pids() {  # server
  case $1 in
    gunicorn+nginx) { pgrep -P "$app_master" || true; } | tr '\n' ' ' ;;
    *) { "$bin/corralctl" --socket "$app_sock" status --json || echo '{"apps": []}'; } | "$python" -c 'import json, sys
print(" ".join(str(w["pid"]) for a in json.load(sys.stdin)["apps"] for w in a["workers"] if w.get("pid", 0) > 0))' || true ;;
  esac
}

# Runs the three workloads against port $2, tagging rows with class $1 and server $3 (round
# $round).
measure() {
  local class=$1 port=$2 server=$3 base="http://127.0.0.1:$2" f slow_pid rps p99 err t0 t1 cpu_ms pids
  local slow_conns=$(( $(per_worker "$class") * workers / 2 ))
  [ "$slow_conns" -lt 1 ] && slow_conns=1
  [ "$slow_conns" -gt 16 ] && slow_conns=16
  wrk_run "$raw/warm.$class.$server" 4 "$base/" > /dev/null 2>&1 || true
  f=$raw/$class.$server.$round.fast; wrk_run "$f" "$conns" "$base/"
  read -r rps p99 err < <(wrk_line "$f"); echo "$class $server fast $rps $p99 $err" >> "$raw/rows"
  f=$raw/$class.$server.$round.cpu
  pids=$(app_pids "$server")
  # shellcheck disable=SC2086  # a list of pids
  t0=$(cpu_ticks $pids)
  wrk_run "$f" "$conns" "$base/cpu?n=$cpu_n"
  # shellcheck disable=SC2086
  t1=$(cpu_ticks $pids)
  cpu_ms=$(awk -v t=$((t1 - t0)) -v n="$(wrk_requests "$f")" -v clk="$clk" 'BEGIN {printf "%.2f", (n > 0 ? t * 1000 / clk / n : 0)}')
  read -r rps p99 err < <(wrk_line "$f"); echo "$class $server cpu $rps $p99 $err $cpu_ms" >> "$raw/rows"
  f=$raw/$class.$server.$round.mixed
  wrk_run "$f.slow" "$slow_conns" "$base/sleep?ms=$slow_ms" &
  slow_pid=$!
  sleep 0.5
  wrk_run "$f" "$fast_conns" "$base/"
  wait "$slow_pid" || true
  read -r rps p99 err < <(wrk_line "$f"); echo "$class $server mixed $rps $p99 $err" >> "$raw/rows"
  log "$class $server round $round done ($(grep -c "^$class $server " "$raw/rows") workloads)"
}

run_corral() {  # class server (corral | corral-embedded)
  local class=$1 server=$2 port conc dir=$tmp/$2-$1 env=""
  conc=$(per_worker "$class")
  [ "$server" = corral-embedded ] && env='env = { CORRAL_WSGI_EMBEDDED = "1" }'
  rm -rf "$dir" && mkdir -p "$dir"
  cat > "$dir/corral.toml" <<TOML
[supervisor]
runtime_dir = "$dir/run"

[proxy]
threads = 1
access_log = "off"

[[listener]]
address = "127.0.0.1:0"

[[route]]
app = "flask"

[app.flask]
kind = "wsgi"
module = "flask_app:app"
python_path = ["$app_dir"]
worker_class = "$class"
workers = $workers
concurrency = $conc
queue_size = 100000
queue_timeout = "60s"
$env
TOML
  "$bin/corral-supervisor" -c "$dir/corral.toml" 2> "$raw/$server.$class.log" &
  local pid=$!
  started+=("$pid")
  local status=""
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || { echo "$server ($class) exited:" >&2; tail -20 "$raw/$server.$class.log" >&2; exit 1; }
    status=$("$bin/corralctl" --socket "$dir/run/control.sock" status --json 2>/dev/null) && break
    sleep 0.1
  done
  port=$(echo "$status" | "$python" -c 'import json, sys; print(json.load(sys.stdin)["listeners"][0]["bound"].rsplit(":", 1)[1])')
  wait_http "$port" / || { echo "$server ($class) did not come up" >&2; tail -20 "$raw/$server.$class.log" >&2; exit 1; }
  app_sock=$dir/run/control.sock
  measure "$class" "$port" "$server"
  stop_pid "$pid"
}

run_gunicorn() {  # class
  local class=$1 port sock=$tmp/gunicorn-$1.sock
  port=$(free_port)
  # shellcheck disable=SC2046
  gunicorn --chdir "$app_dir" -w "$workers" $(gunicorn_flags "$class") --bind "unix:$sock" \
    --backlog 2048 --log-level warning flask_app:app 2> "$raw/gunicorn.$class.log" &
  local gpid=$!
  started+=("$gpid")
  rm -rf "$tmp/nginx-$class" && mkdir -p "$tmp/nginx-$class"
  cat > "$tmp/nginx-$class/nginx.conf" <<NGINX
daemon off;
user $(id -un);
worker_processes 1;
pid $tmp/nginx-$class/nginx.pid;
error_log $tmp/nginx-$class/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $tmp/nginx-$class/body;
    proxy_temp_path $tmp/nginx-$class/proxy;
    fastcgi_temp_path $tmp/nginx-$class/fastcgi;
    uwsgi_temp_path $tmp/nginx-$class/uwsgi;
    scgi_temp_path $tmp/nginx-$class/scgi;
    keepalive_requests 1000000;
    upstream app {
        server unix:$sock;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$port backlog=4096;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
        }
    }
}
NGINX
  nginx -c "$tmp/nginx-$class/nginx.conf" -p "$tmp/nginx-$class" 2> "$raw/nginx.$class.log" &
  local npid=$!
  started+=("$npid")
  wait_http "$port" / || { echo "gunicorn+nginx ($class) did not come up" >&2; tail -20 "$raw/gunicorn.$class.log" >&2; exit 1; }
  app_master=$gpid
  measure "$class" "$port" gunicorn+nginx
  stop_pid "$npid"
  stop_pid "$gpid"
}

log "Flask app under [$servers]: classes [$classes], $workers workers, threads $threads, greenlets $greenlets, ${dur}s per run, $rounds round(s)"
for round in $(seq 1 "$rounds"); do
  for class in $classes; do
    for server in $servers; do
      case $server in
        corral | corral-embedded) run_corral "$class" "$server" ;;
        gunicorn+nginx) run_gunicorn "$class" ;;
        *) echo "wsgi bench: unknown server $server" >&2; exit 1 ;;
      esac
    done
  done
done

{
  echo "# WSGI: corral vs Gunicorn + nginx ($(nproc) CPUs, $(date -u +%F))"
  echo
  echo "Flask $($python -c 'import importlib.metadata as m; print(m.version("flask"))'), $workers workers;" \
       "gthread $threads threads, gevent $greenlets greenlets per worker; wrk -t1, ${dur}s per run," \
       "$([ "$rounds" = 1 ] && echo "one run each." || echo "medians (min–max) of $rounds interleaved rounds.")"
  echo "fast: GET / from $conns connections; cpu: GET /cpu?n=$cpu_n from $conns connections;" \
       "mixed: GET / from $fast_conns connections while half the capacity is held by /sleep?ms=$slow_ms."
  echo "corral runs the app on /usr/bin/python3 (its WSGI host as an extension module); corral-embedded on the libpython3.11.so linked into corral-worker."
  echo
  echo "| class | server | fast req/s | fast p99 ms | cpu req/s | cpu p99 ms | cpu app CPU ms/req | mixed fast req/s | mixed fast p99 ms | errors |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for class in $classes; do
    for server in $servers; do
      cells=""
      for wc in fast:4 fast:5 cpu:4 cpu:5 cpu:7 mixed:4 mixed:5; do
        cells+=" $(awk -v c="$class" -v s="$server" -v w="${wc%:*}" -v k="${wc#*:}" '$1 == c && $2 == s && $3 == w {print $k}' "$raw/rows" | median_range) |"
      done
      errors=$(awk -v c="$class" -v s="$server" '$1 == c && $2 == s {e += ($6 > 0 ? $6 : 0)} END {print e + 0}' "$raw/rows")
      echo "| $class | $server |$cells $errors |"
    done
  done
} > "$out/wsgi.md"
cat "$out/wsgi.md"
