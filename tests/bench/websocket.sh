#!/usr/bin/env bash
# The WebSocket benchmark: echo messages per second through corral and through nginx proxying
# the same app, and the proxy CPU each message costs.
# The app is tests/apps/websocket_echo/echo.py (python3-websockets), one process, on a Unix
# socket: under corral as the worker of app `ws` (kind http, concurrency CONNS, so no tunnel
# waits), under nginx bound by itself (nginx-light: proxy_http_version 1.1, Upgrade and
# Connection "upgrade" set from the client's). Both proxies: one thread / worker process,
# pinned to CPU 0, access log off. The load (tests/bench/ws_load.py: CONNS connections, each
# sending a SIZE-byte text message and waiting for its echo, for SECONDS_PER_RUN) and the apps
# run on the other CPUs. "direct" is the same load on the app's socket, no proxy: the app's
# and the client's own ceiling. Runs interleaved (corral, nginx, direct, ...), medians (min–max).
# Proxy CPU µs/message = utime+stime of the proxy over the run ÷ messages (each message is
# relayed twice: there and back).
# Writes BUILD/bench/websocket.md and raw files to BUILD/bench/websocket-raw/. Starts everything
# it measures itself and stops only that.
#
# usage: tests/bench/websocket.sh [BUILD_DIR]
# env:   BENCH_QUICK=1 (1 run of 2 s)  RUNS (3)  SECONDS_PER_RUN (6)  CONNS (16)  SIZE (32)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${1:-build}
bin=$(cd "$build/bin" && pwd)
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
bench_durations 3 6 1 2
conns=${CONNS:-16}
size=${SIZE:-32}
py=/usr/bin/python3
echo_app=$src/tests/apps/websocket_echo/echo.py

need_tools "websocket bench" nginx taskset curl
$py -c 'import websockets' 2> /dev/null || { echo "websocket bench: python3-websockets is missing" >&2; exit 1; }
bench_begin "websocket bench" websocket-raw crl-wsb

# ---- corral ----
dir=$tmp/corral
mkdir -p "$dir"
{ corral_toml_head "$dir"; cat <<TOML; } > "$dir/corral.toml"

[[route]]
path = "/"
app = "ws"

[app.ws]
kind = "http"
command = ["$py", "$echo_app"]
workers = 1
concurrency = $((conns + 8))
health_path = "/health"
TOML
corral_start corral "$dir"
c_port=$corral_port c_proxy=$corral_proxy

# ---- the app alone, and nginx in front of it ----
sock=$tmp/echo.sock
taskset -c "$load_cpus" $py "$echo_app" "$sock" 2> "$raw/echo.log" &
started+=("$!")
for _ in $(seq 1 100); do [ -S "$sock" ] && break; sleep 0.1; done
n_port=$(free_port)
mkdir -p "$tmp/nginx"
cat > "$tmp/nginx/nginx.conf" <<NGINX
$(nginx_main_head "$tmp/nginx")
user $(id -un);
worker_processes 1;
worker_cpu_affinity 1;
events { worker_connections 4096; }
http {
$(nginx_http_head "$tmp/nginx")
    server {
        listen 127.0.0.1:$n_port backlog=4096;
        location / {
            proxy_pass http://unix:$sock;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_set_header Host \$http_host;
            proxy_read_timeout 60s;
        }
    }
}
NGINX
cp "$tmp/nginx/nginx.conf" "$raw/nginx.conf"
taskset -c "$proxy_cpu" nginx -c "$tmp/nginx/nginx.conf" -p "$tmp/nginx" 2> "$raw/nginx.log" &
n_master=$!
started+=("$n_master")
sleep 0.5
n_proxy=$(pgrep -P "$n_master" | head -1)
[ -n "$n_proxy" ] || { echo "nginx did not start" >&2; cat "$raw/nginx.log" >&2; exit 1; }
log "nginx: master $n_master, worker $n_proxy, listener 127.0.0.1:$n_port"

# One run: appends "target run msg/s p50_us p99_us cpu_us/msg errors" to $raw/runs.
measure() {  # target run warm(0/1)
  local t=$1 i=$2 d=$dur f before=0 after=0 pid="" args
  [ "$3" = 1 ] && d=1
  f=$raw/$t.$i.out
  case $t in
    corral) pid=$c_proxy; args=(--url "ws://127.0.0.1:$c_port/echo") ;;
    nginx) pid=$n_proxy; args=(--url "ws://127.0.0.1:$n_port/echo") ;;
    direct) args=(--url "ws://localhost/echo" --unix "$sock") ;;
  esac
  [ -n "$pid" ] && before=$(cpu_ticks "$pid")
  timeout $((d + 30)) taskset -c "$load_cpus" $py "$here/ws_load.py" "${args[@]}" --conns "$conns" --seconds "$d" \
    --size "$size" > "$f" 2>&1 || echo "load exit $?" >> "$f"
  [ -n "$pid" ] && after=$(cpu_ticks "$pid")
  [ "$3" = 1 ] && { rm -f "$f"; return; }
  awk -v a="$after" -v b="$before" -v c="$clk" -v t="$t" -v i="$i" -v p="$pid" "$bench_awk"' /^BENCH / {
      bench_fields()
      n = v["messages"]; found = 1; cpu = "-"
      if (n > 0 && p != "") cpu = sprintf("%.2f", (a - b) / c * 1e6 / n)
      printf "%s %d %.0f %d %d %s %d\n", t, i, n / (v["duration_us"] / 1e6), v["p50"], v["p99"], cpu, v["errors"]}
      END {if (!found) print t, i, 0, 0, 0, "-", -1}' "$f" >> "$raw/runs"
  log "run $i/$runs $t: $(tail -1 "$raw/runs" | cut -d' ' -f3-)"
}

: > "$raw/runs"
for t in corral nginx direct; do measure "$t" 0 1; done
for i in $(seq 1 "$runs"); do
  for t in corral nginx direct; do measure "$t" "$i" 0; done
done

field() { awk -v n="$1" '$1 == n {print $'"$2"'}' "$raw/runs"; }  # target field -> its values
col() { field "$1" "$2" | median_range; }
med() { field "$1" "$2" | median; }
{
  echo "# WebSocket echo: corral vs nginx in front of the same app"
  echo
  echo "$(bench_env nginx); proxy pinned to CPU $proxy_cpu, load and app on CPU $load_cpus."
  echo "App: tests/apps/websocket_echo/echo.py (python3-websockets, one process). Load: $conns connections, each a $size-byte"
  echo "text message and its echo at a time, ${dur}s per run; median of $runs interleaved runs after a 1 s warm-up, (min–max)."
  echo "Proxy CPU = utime+stime of corral-proxy / the nginx worker ÷ messages echoed."
  echo
  echo "| path | messages/s | p50 µs | p99 µs | proxy CPU µs/message | errors |"
  echo "|---|---:|---:|---:|---:|---:|"
  echo "| corral | $(col corral 3) | $(col corral 4) | $(col corral 5) | $(col corral 6) | $(col corral 7) |"
  echo "| nginx | $(col nginx 3) | $(col nginx 4) | $(col nginx 5) | $(col nginx 6) | $(col nginx 7) |"
  echo "| direct (no proxy) | $(col direct 3) | $(col direct 4) | $(col direct 5) | – | $(col direct 7) |"
  echo
  c=$(med corral 6) n=$(med nginx 6)
  if [ -n "$c" ] && [ -n "$n" ] && awk -v n="$n" 'BEGIN {exit !(n > 0)}'; then
    awk -v c="$c" -v n="$n" 'BEGIN {printf "proxy CPU per message: corral %s µs, nginx %s µs (corral %+.0f %%)\n", c, n, (c / n - 1) * 100}'
  fi
} | tee "$out/websocket.md"
