# shellcheck shell=bash disable=SC2154,SC2034  # `build`, `bin`, `here` come from the script that sources this; what it sets is for that script
# Shared by the side benchmarks (admin.sh, compress.sh, legacy.sh, static.sh, websocket.sh,
# wsgi.sh; run.sh has its own): run lengths, tool checks, output folders, the processes a run
# started and their clean stop, CPUs, ports, readiness, CPU ticks, a corral instance started
# and found, the nginx config boilerplate, the BENCH lines of the load generators, medians,
# the environment line of a summary. Source it after setting `here`, `build` and `bin`; then
# call bench_begin NAME RAW_SUBDIR TMP_PREFIX.

# Sets runs and dur: RUNS and SECONDS_PER_RUN when given, else the quick pair under
# BENCH_QUICK=1 and the full pair otherwise.
bench_durations() {  # full_runs full_seconds quick_runs quick_seconds
  if [ "${BENCH_QUICK:-0}" = 1 ]; then
    runs=${RUNS:-$3}; dur=${SECONDS_PER_RUN:-$4}
  else
    runs=${RUNS:-$1}; dur=${SECONDS_PER_RUN:-$2}
  fi
}

# Exits (with what to install) unless every tool is on the PATH.
need_tools() {  # bench_name tool...
  local name=$1 tool
  shift
  for tool in "$@"; do
    command -v "$tool" > /dev/null || { echo "$name: $tool is missing (packaging/install-deps.sh bench)" >&2; exit 1; }
  done
}

# Sets out (BUILD/bench), raw (a fresh out/RAW_SUBDIR), tmp (a scratch folder removed on
# exit), the log prefix, clk (clock ticks per second), ncpu, proxy_cpu (0: where the measured
# proxy runs) and load_cpus (the others: load generators, supervisors, workers); installs the
# exit trap that stops everything in `started`.
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
  clk=$(getconf CLK_TCK)
  ncpu=$(nproc)
  proxy_cpu=0
  load_cpus=$([ "$ncpu" -gt 1 ] && echo "1-$((ncpu - 1))" || echo 0)
}
log() { printf '[%s %s] %s\n' "$bench_name" "$(date +%T)" "$*" >&2; }

stop_pid() {  # pid: TERM, wait up to 10 s, then KILL
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
forget_pid() {  # pid: no longer ours to stop (it has exited, or was stopped)
  local keep=() p
  for p in "${started[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  started=("${keep[@]}")
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

# ---- a corral instance --------------------------------------------------------------------
# The head of a benchmark corral config: runtime_dir DIR/run, log_level warn, one proxy thread,
# access log off (plus PROXY_LINES in [proxy]), one listener on 127.0.0.1:0. Routes and apps
# follow.
corral_toml_head() {  # dir [proxy_lines]
  cat <<TOML
[supervisor]
runtime_dir = "$1/run"
log_level = "warn"

[proxy]
threads = 1
access_log = "off"
${2:+$2
}
[[listener]]
address = "127.0.0.1:0"
TOML
}

# A whole config: the head, a TLS listener (listener 1) when CERT and KEY are given, and every
# path routed to app `pool`: WORKERS corral-testapp workers of CONCURRENCY (the variables of
# the caller).
corral_pool_toml() {  # dir [proxy_lines] [cert key]
  corral_toml_head "$1" "${2:-}"
  [ -n "${3:-}" ] && printf '\n[[listener]]\naddress = "127.0.0.1:0"\ntls = { cert = "%s", key = "%s" }\n' "$3" "$4"
  cat <<TOML

[[route]]
path = "/"
app = "pool"

[app.pool]
kind = "http"
command = ["$bin/corral-testapp"]
workers = $workers
concurrency = $concurrency
TOML
}

# Starts corral-supervisor -c DIR/corral.toml on the load CPUs, waits until its status shows
# READY (default: every app running), checks the proxy is its child and pins every thread of
# the proxy to proxy_cpu. Keeps raw/LABEL.toml, raw/LABEL.log and raw/LABEL.status.json. Sets
# corral_sup, corral_port (listener 0), corral_proxy and corral_admin (admin.bound, or -).
# Exits with the log's tail when corral does not come up.
corral_start() {  # label dir [ready_pattern]
  local label=$1 dir=$2 ready=${3:-'"state":"running"'} status=""
  cp "$dir/corral.toml" "$raw/$label.toml"
  taskset -c "$load_cpus" "$bin/corral-supervisor" -c "$dir/corral.toml" 2> "$raw/$label.log" &
  corral_sup=$!
  started+=("$corral_sup")
  for _ in $(seq 1 300); do
    kill -0 "$corral_sup" 2>/dev/null || { echo "$label exited; log:" >&2; tail -20 "$raw/$label.log" >&2; exit 1; }
    status=$("$bin/corralctl" --socket "$dir/run/control.sock" status --json 2>/dev/null) &&
      echo "$status" | grep -q "$ready" && break
    sleep 0.1
  done
  echo "$status" > "$raw/$label.status.json"
  corral_port="" corral_proxy="" corral_admin=""
  read -r corral_port corral_proxy corral_admin < <(echo "$status" | python3 -c '
import json, sys
s = json.load(sys.stdin)
ls = s.get("listeners", [])
print(ls[0].get("bound", "-").rsplit(":", 1)[-1] if ls else "-", s.get("proxy", {}).get("pid", "-"),
      (s.get("admin") or {}).get("bound") or "-")') || true
  if [ -z "$corral_proxy" ] || [ "$corral_proxy" = - ] || [ "${corral_port:--}" = - ]; then
    echo "$label did not start; log:" >&2; tail -20 "$raw/$label.log" >&2; exit 1
  fi
  pgrep -P "$corral_sup" -x corral-proxy | grep -qx "$corral_proxy" ||
    { echo "$label: proxy $corral_proxy is not a child of supervisor $corral_sup" >&2; exit 1; }
  taskset -apc "$proxy_cpu" "$corral_proxy" > /dev/null
  log "$label: supervisor $corral_sup, proxy $corral_proxy, listener 127.0.0.1:$corral_port$([ "$corral_admin" = - ] || echo ", admin $corral_admin")"
}

# ---- nginx ----------------------------------------------------------------------------------
# The main-context lines of a benchmark nginx.conf whose files live in DIR: in the foreground,
# pid and error log in DIR.
nginx_main_head() {  # dir
  printf 'daemon off;\npid %s/nginx.pid;\nerror_log %s/error.log warn;\n' "$1" "$1"
}
# The first lines inside http { }: no access log, every temp path in DIR.
nginx_http_head() {  # dir
  local t
  printf '    access_log off;\n'
  for t in client_body:body proxy:proxy fastcgi:fastcgi uwsgi:uwsgi scgi:scgi; do
    printf '    %s_temp_path %s/%s;\n' "${t%%:*}" "$1" "${t#*:}"
  done
}

# ---- results ------------------------------------------------------------------------------
# awk source: bench_fields() reads the current BENCH line (key=value fields, as stats.lua and
# ws_load.py print them) into v[]. Use as: awk "$bench_awk"' /^BENCH / {bench_fields(); ...}'.
# shellcheck disable=SC2016  # awk source: the $ are awk's
bench_awk='function bench_fields(  k, kv) {for (k = 2; k <= NF; k++) {split($k, kv, "="); v[kv[1]] = kv[2]}}'

# Numbers on stdin, one a line -> "median (min–max)"; the median alone when they are all
# equal; "-" when there are none.
median_range() {
  sort -g | awk '{a[NR] = $1} END {if (NR == 0) {print "-"; exit}
    m = a[int((NR + 1) / 2)]; if (NR == 1 || a[1] == a[NR]) print m; else print m " (" a[1] "–" a[NR] ")"}'
}
# Numbers on stdin, one a line -> the median; NONE (default empty) when there are none.
# shellcheck disable=SC2120  # the argument is optional
median() {  # [none]
  sort -g | awk -v none="${1-}" '{a[NR] = $1} END {print (NR ? a[int((NR + 1) / 2)] : none)}'
}

# The environment line of a summary: "corral from BIN (source tree REV)[, nginx/VERSION]; N CPUs
# (MODEL)".
# shellcheck disable=SC2120  # the argument is optional
bench_env() {  # [nginx]
  printf 'corral from %s (source tree %s)%s; %s CPUs (%s)' "$bin" \
    "$(git -C "$here" describe --always --dirty 2>/dev/null || echo '?')" \
    "$([ "${1-}" = nginx ] && echo ", $(nginx -v 2>&1 | sed 's/.*: //')")" "$ncpu" \
    "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
}
