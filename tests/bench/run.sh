#!/usr/bin/env bash
# make bench: corral side by side with nginx, HAProxy, nghttpx and h2o (Debian packages, our own
# configs from tests/bench/peers/), all in front of the same pool of corral-testapp workers on
# Unix sockets (the ones corral's supervisor runs; h2o 2.2 uses the first one only), and the app
# directly as the baseline.
#
#   1  HTTP/1.1 keep-alive, small responses (wrk)           /big?bytes=100
#   2  HTTP/2 over TLS (h2load -c32 -m8)                    /big?bytes=100
#   3  HTTP/1.1 keep-alive, 16 KiB responses (wrk)          /big?bytes=16384
#   4  sync workers (concurrency = 1), mixed: fast requests from FAST_CONNS connections while
#      SLOW_CONNS connections keep a 200 ms request in flight; p50/p99/p99.9 of the fast ones
#   5  IDLE_CONNS idle keep-alive connections (one request each, then idle): proxy RSS,
#      plaintext and TLS
#   6  HTTP/2 over TLS (h2load -c32 -m8), 16 KiB responses  /big?bytes=16384
#   7  new TLS 1.3 connections (tls_conns.py, one request each): proxy CPU µs per connection
#      with full handshakes (ECDSA P-256, RSA 2048 by SNI rsa.bench) and resumed ones
#
# Every target runs at the same time (idle when not measured), each proxy pinned to core 0,
# load generators and workers on the other cores. Runs are interleaved (run 1 of every target,
# then run 2, ...) and every figure is the median of RUNS runs, with min–max. Proxy CPU µs per
# request = utime+stime of the proxy's processes over the run ÷ completed requests.
# Writes raw outputs to BUILD/bench/raw/ and the summary to BUILD/bench/summary.md.
# Starts everything it measures itself, on loopback, and stops only that.
#
# usage: tests/bench/run.sh [BUILD_DIR]
# env:   BENCH_QUICK=1 (one 2 s run per target, 1000 idle connections: a smoke run)
#        RUNS (3)  SECONDS_PER_RUN (4)  HANDSHAKE_SECONDS (2, scenario 7's runs)
#        SCENARIOS ("1 2 3 4 5 6 7")  TARGETS ("corral nginx haproxy nghttpx h2o direct")
#        WORKERS (4)  CONCURRENCY (8)  CONNS (32)  H2_STREAMS (8)  FAST_CONNS (16)
#        SLOW_CONNS (2)  SLOW_MS (200)  IDLE_CONNS (10000)  IDLE_TLS_CONNS (1000)  TLS_CLIENTS (4)
set -euo pipefail
shopt -u patsub_replacement 2>/dev/null || true
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
bin=$(cd "$build/bin" && pwd)
if [ "${BENCH_QUICK:-0}" = 1 ]; then
  runs=${RUNS:-1}; dur=${SECONDS_PER_RUN:-2}; idle_conns=${IDLE_CONNS:-1000}; warm=0; hs_dur=${HANDSHAKE_SECONDS:-2}
  idle_tls_conns=${IDLE_TLS_CONNS:-500}
else
  # 4 s runs: at 20,000-60,000 requests a second a run still counts 80,000+ requests and 400
  # ticks of proxy CPU (a tick is 0.25 % of it), and the default run fits in 12 minutes. The
  # spread that remains comes from the machine, which the median of 3 interleaved runs is for.
  runs=${RUNS:-3}; dur=${SECONDS_PER_RUN:-4}; idle_conns=${IDLE_CONNS:-10000}; warm=1; hs_dur=${HANDSHAKE_SECONDS:-2}
  # A Python client does a few hundred TLS handshakes a second on one load CPU: 10,000 would
  # take minutes per target and run; 1000 hold 15 MB of TLS state, plenty for a per-connection figure.
  idle_tls_conns=${IDLE_TLS_CONNS:-1000}
fi
base_dur=$dur
scenarios=${SCENARIOS:-1 2 3 4 5 6 7}
targets=${TARGETS:-corral nginx haproxy nghttpx h2o direct}
tls_clients=${TLS_CLIENTS:-4}
workers=${WORKERS:-4}
concurrency=${CONCURRENCY:-8}
conns=${CONNS:-32}
h2_streams=${H2_STREAMS:-8}
fast_conns=${FAST_CONNS:-16}
slow_conns=${SLOW_CONNS:-2}
slow_ms=${SLOW_MS:-200}
small_path=/big?bytes=100
big_path=/big?bytes=16384
python=$(command -v /usr/bin/python3 || command -v python3)

out=$(mkdir -p "$build/bench" && cd "$build/bench" && pwd)
raw=$out/raw
rm -rf "$raw" && mkdir -p "$raw"
tmp=$(mktemp -d /tmp/crl-bench-XXXXXX)
ncpu=$(nproc)
proxy_cpu=0
load_cpus=$([ "$ncpu" -gt 1 ] && echo "1-$((ncpu - 1))" || echo 0)
clk=$(getconf CLK_TCK)
# 10,000 idle connections: HAProxy wants two descriptors per connection it may hold.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
nofile=$(ulimit -n)
# HAProxy takes two descriptors per idle connection (it keeps the worker connection): under a
# hard limit too low for 10,000 of them, the default count is what every target can hold, in
# thousands. Past it, HAProxy's last connections would wait in its backlog until its idle
# ones time out.
if [ -z "${IDLE_CONNS:-}" ] && [ "$nofile" != unlimited ] && [ $(((idle_conns + 1024) * 2 + 256)) -gt "$nofile" ]; then
  idle_conns=$(((nofile - 256) / 2 - 1024))
  idle_conns=$((idle_conns / 1000 * 1000))
fi
maxconn=$((idle_conns + 2048))
haproxy_maxconn=$maxconn
[ "$nofile" != unlimited ] && [ $((maxconn * 2 + 256)) -gt "$nofile" ] && haproxy_maxconn=$(((nofile - 256) / 2))
if [ "$nofile" != unlimited ] && [ $((idle_conns + 1024)) -gt "$nofile" ]; then
  echo "bench: IDLE_CONNS=$idle_conns needs about $((idle_conns + 1024)) open files per process; the limit is $nofile" >&2
  exit 1
fi

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }

# ---- process bookkeeping: stop only what we started -------------------------------------
started=()   # "name pid"
cleanup() {
  local entry pid
  for entry in "${started[@]}"; do
    pid=${entry#* }
    kill -TERM "$pid" 2>/dev/null || true
  done
  for entry in "${started[@]}"; do
    pid=${entry#* }
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {  # port -> 0 once something accepts on 127.0.0.1:port (≤ 10 s)
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
children() { local p; for p in "$@"; do echo "$p"; pgrep -P "$p" || true; done; }
cpu_ticks() {  # pids... -> utime+stime ticks summed
  local p t=0 v
  for p in "$@"; do v=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0); t=$((t + v)); done
  echo "$t"
}
status_kib() {  # field pids... -> VmHWM/VmRSS in KiB summed
  local f=$1 p t=0 v; shift
  for p in "$@"; do v=$(awk -v f="$f:" '$1 == f {print $2}' "/proc/$p/status" 2>/dev/null || echo 0); t=$((t + ${v:-0})); done
  echo "$t"
}
reset_peak() { local p; for p in "$@"; do echo 5 > "/proc/$p/clear_refs" 2>/dev/null || true; done; }
subst() {  # template -> stdout, @NAME@ replaced from the variables named in SUBST_VARS
  local content name
  content=$(cat "$1")
  for name in $SUBST_VARS; do content=${content//@$name@/${!name}}; done
  printf '%s\n' "$content"
}

# ---- TLS material (self-signed): ECDSA P-256 for localhost (every TLS listener's default), RSA
# 2048 for SNI rsa.bench (scenario 7's RSA handshakes) ---------------------------------------
CERT=$tmp/cert.pem KEY=$tmp/key.pem PEM=$tmp/combined.pem
RSA_CERT=$tmp/rsa-cert.pem RSA_KEY=$tmp/rsa-key.pem RSA_PEM=$tmp/rsa-combined.pem
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost -keyout "$KEY" -out "$CERT" > "$raw/openssl.log" 2>&1
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=rsa.bench \
  -addext subjectAltName=DNS:rsa.bench -keyout "$RSA_KEY" -out "$RSA_CERT" >> "$raw/openssl.log" 2>&1
cat "$CERT" "$KEY" > "$PEM"
cat "$RSA_CERT" "$RSA_KEY" > "$RSA_PEM"
TMP=$tmp RUN=$tmp/run TESTAPP=$bin/corral-testapp WORKERS=$workers CONCURRENCY=$concurrency
NOFILE=$nofile MAXCONN=$maxconn HAPROXY_MAXCONN=$haproxy_maxconn

# ---- corral (its supervisor runs the worker pool everybody uses) --------------------------
declare -A port_h1 port_h2 port_sync host_sync pids na_h2 na_all
for t in $targets; do host_sync[$t]=bench; done
TLS_LISTENER=""
SUBST_VARS="RUN TESTAPP WORKERS CONCURRENCY TLS_LISTENER"
TLS_LISTENER="[[listener]]
address = \"127.0.0.1:0\"
tls = { certs = [{ cert = \"$CERT\", key = \"$KEY\" }, { cert = \"$RSA_CERT\", key = \"$RSA_KEY\" }] }
"
subst "$here/peers/corral.toml.in" > "$tmp/corral.toml"
corral_tls=1
if ! "$bin/corral-supervisor" --check -c "$tmp/corral.toml" > "$raw/corral.tls-check.log" 2>&1; then
  corral_tls=0
  TLS_LISTENER=""
  subst "$here/peers/corral.toml.in" > "$tmp/corral.toml"
fi
cp "$tmp/corral.toml" "$raw/corral.toml"
taskset -c "$load_cpus" "$bin/corral-supervisor" -c "$tmp/corral.toml" 2> "$raw/corral.log" &
started+=("corral $!")
status=""
for _ in $(seq 1 150); do
  status=$("$bin/corralctl" --socket "$tmp/run/control.sock" status --json 2>/dev/null) &&
    echo "$status" | grep -q '"state":"running"' && break
  sleep 0.1
done
echo "$status" > "$raw/corral.status.json"
read -r c_h1 c_h2 c_proxy c_pool c_sync < <(echo "$status" | "$python" -c '
import json, sys
s = json.load(sys.stdin)
ls = [l.get("bound", "").rsplit(":", 1)[-1] for l in s.get("listeners", [])]
apps = {a["name"]: [w["socket"] for w in a["workers"]] for a in s.get("apps", [])}
print(ls[0] if ls else "-", ls[1] if len(ls) > 1 else "-", s.get("proxy", {}).get("pid", "-"),
      ",".join(apps.get("pool", [])) or "-", ",".join(apps.get("sync", [])) or "-")') || true
if [ -z "${c_proxy:-}" ] || [ "$c_proxy" = - ] || [ "$c_pool" = - ] || [ "$c_sync" = - ]; then
  echo "bench: corral did not start; log:" >&2; tail -20 "$raw/corral.log" >&2; exit 1
fi
taskset -apc "$proxy_cpu" "$c_proxy" > /dev/null
port_h1[corral]=$c_h1; port_sync[corral]=$c_h1; host_sync[corral]=sync.bench; pids[corral]=$c_proxy
if [ "$corral_tls" = 1 ]; then port_h2[corral]=$c_h2; else na_h2[corral]="n/a: not supported by this build"; fi
IFS=, read -r -a pool_socks <<< "$c_pool"
IFS=, read -r -a sync_socks <<< "$c_sync"
for s in "${pool_socks[@]}" "${sync_socks[@]}"; do
  for _ in $(seq 1 50); do [ -S "$s" ] && break; sleep 0.1; done
done

# ---- peers ---------------------------------------------------------------------------------
NGINX_POOL_SERVERS="" NGINX_SYNC_SERVERS="" HAPROXY_POOL_SERVERS="" HAPROXY_SYNC_SERVERS="" NGHTTPX_BACKENDS=""
i=0
for s in "${pool_socks[@]}"; do
  NGINX_POOL_SERVERS+="        server unix:$s;"$'\n'
  HAPROXY_POOL_SERVERS+="    server w$i unix@$s maxconn $concurrency"$'\n'
  NGHTTPX_BACKENDS+="backend=unix:$s;/"$'\n'
  i=$((i + 1))
done
for s in "${sync_socks[@]}"; do
  NGINX_SYNC_SERVERS+="        server unix:$s;"$'\n'
  HAPROXY_SYNC_SERVERS+="    server s$i unix@$s maxconn 1"$'\n'
  NGHTTPX_BACKENDS+="backend=unix:$s;sync.bench/"$'\n'
  i=$((i + 1))
done
H2O_UPSTREAM=${pool_socks[0]}
USER=$(id -un)
SUBST_VARS="USER TMP NOFILE MAXCONN HAPROXY_MAXCONN CERT KEY PEM RSA_CERT RSA_KEY RSA_PEM PORT_H1 PORT_H2 PORT_SYNC
 NGINX_POOL_SERVERS NGINX_SYNC_SERVERS HAPROXY_POOL_SERVERS HAPROXY_SYNC_SERVERS NGHTTPX_BACKENDS H2O_UPSTREAM"

# Starts a peer pinned to the proxy core (fills port_*/pids); peer_ready checks it once every
# peer has been started, so their start-ups overlap.
start_peer() {  # name binary
  local name=$1 exe
  exe=$(command -v "$2" || true)
  if [ -z "$exe" ]; then
    na_all[$name]="n/a: $2 not installed (make bench installs it)"
    return
  fi
  PORT_H1=$(free_port) PORT_H2=$(free_port) PORT_SYNC=$(free_port)
  local conf
  case $name in
    nginx) conf=$tmp/nginx.conf; subst "$here/peers/nginx.conf.in" > "$conf"
           taskset -c "$proxy_cpu" "$exe" -p "$tmp" -e "$tmp/nginx.error.log" -c "$conf" > "$raw/nginx.log" 2>&1 & ;;
    haproxy) conf=$tmp/haproxy.cfg; subst "$here/peers/haproxy.cfg.in" > "$conf"
           taskset -c "$proxy_cpu" "$exe" -db -f "$conf" > "$raw/haproxy.log" 2>&1 & ;;
    nghttpx) conf=$tmp/nghttpx.conf; subst "$here/peers/nghttpx.conf.in" > "$conf"
           PORT_SYNC=$PORT_H1
           taskset -c "$proxy_cpu" "$exe" --conf="$conf" > "$raw/nghttpx.log" 2>&1 & ;;
    h2o) conf=$tmp/h2o.conf; subst "$here/peers/h2o.conf.in" > "$conf"
           PORT_SYNC=-
           taskset -c "$proxy_cpu" "$exe" -c "$conf" > "$raw/h2o.log" 2>&1 & ;;
  esac
  local pid=$!
  started+=("$name $pid")
  cp "$conf" "$raw/"
  port_h1[$name]=$PORT_H1; port_h2[$name]=$PORT_H2; port_sync[$name]=$PORT_SYNC; pids[$name]=$pid
  [ "$name" = nghttpx ] && host_sync[$name]=sync.bench
  return 0
}
peer_ready() {  # name
  [ -n "${na_all[$1]:-}" ] && return 0
  if ! wait_port "${port_h1[$1]}" || ! wait_port "${port_h2[$1]}" || ! kill -0 "${pids[$1]}" 2>/dev/null; then
    na_all[$1]="n/a: $1 did not start (see raw/$1.log)"
  fi
}
for t in $targets; do
  case $t in nginx|haproxy|nghttpx|h2o) start_peer "$t" "$t" ;; esac
done
for t in $targets; do
  case $t in nginx|haproxy|nghttpx|h2o) peer_ready "$t" ;; esac
done
sleep 0.3  # worker processes forked after the listeners are bound
na_h2[direct]="n/a: the test app has no TLS"
if [[ " $targets " == *" direct "* ]]; then
  port_h1[direct]=$(free_port)
  taskset -c "$load_cpus" "$bin/corral-testapp" --listen "127.0.0.1:${port_h1[direct]}" > "$raw/direct.log" 2>&1 &
  started+=("direct $!")
  pids[direct]=$!
  wait_port "${port_h1[direct]}" || na_all[direct]="n/a: the test app did not start"
fi
log "targets up: $(for t in $targets; do printf '%s(%s) ' "$t" "${pids[$t]:-${na_all[$t]:-?}}"; done)"

proc_tree() { children "${pids[$1]}"; }

# ---- one measured run ----------------------------------------------------------------------
# Each writes one line to $raw/S<n>.<target>.runs:
#   1,3: rps p50 p99 cpu_us peak_kib errors
#   2:   rps p50 p99 cpu_us peak_kib errors
#   4:   fast_rps p50 p99 p999 slow_reqs cpu_us peak_kib errors
#   5:   held rss_kib per_conn_bytes failed
measure_begin() {  # target
  mtree=$(proc_tree "$1" | tr '\n' ' ')
  # shellcheck disable=SC2086
  reset_peak $mtree
  # shellcheck disable=SC2086
  mticks=$(cpu_ticks $mtree)
}
measure_end() {  # target requests -> sets m_cpu m_peak
  local after
  # shellcheck disable=SC2086
  after=$(cpu_ticks $mtree)
  # shellcheck disable=SC2086
  m_peak=$(status_kib VmHWM $mtree)
  m_cpu=$(awk -v a="$after" -v b="$mticks" -v c="$clk" -v r="$2" 'BEGIN {if (r > 0) printf "%.1f", (a - b) / c * 1e6 / r; else print "-"}')
}
wrk_line() {  # file -> "requests rps p50 p99 p999 errors"
  awk '/^BENCH / {for (i = 2; i <= NF; i++) {split($i, kv, "="); v[kv[1]] = kv[2]}
       printf "%d %.0f %d %d %d %d\n", v["requests"], v["requests"] / (v["duration_us"] / 1e6), v["p50"], v["p99"], v["p999"], v["errors"] + v["status"]; found = 1}
       END {if (!found) print "0 0 0 0 0 -1"}' "$1"
}
wrk_run() {  # file conns duration url [host] -> runs wrk on the load cores, bounded
  timeout $(($3 + 20)) taskset -c "$load_cpus" wrk -t1 -c"$2" -d"$3s" --timeout 10s -s "$here/stats.lua" \
    -H "Host: ${5:-bench}" "$4" > "$1" 2>&1 || echo "wrk exit $?" >> "$1"
}

run_h1() {  # scenario target run path
  local s=$1 t=$2 i=$3 path=$4 f reqs rps p50 p99 p999 errs
  f=$raw/S$s.$t.$i.wrk
  measure_begin "$t"
  wrk_run "$f" "$conns" "$dur" "http://127.0.0.1:${port_h1[$t]}$path"
  read -r reqs rps p50 p99 p999 errs < <(wrk_line "$f")
  measure_end "$t" "$reqs"
  [ "$t" = direct ] && m_cpu="app:$m_cpu"
  echo "$rps $p50 $p99 $m_cpu $m_peak $errs" >> "$raw/S$s.$t.runs"
}
run_h2() {  # scenario target run path
  local s=$1 t=$2 i=$3 path=$4 f reqs rps p50 p99 errs
  f=$raw/S$s.$t.$i.h2load
  measure_begin "$t"
  timeout $((dur + 30)) taskset -c "$load_cpus" h2load -t1 -c"$conns" -m"$h2_streams" -D "$dur" \
    --log-file="$f.log" "https://127.0.0.1:${port_h2[$t]}$path" > "$f" 2>&1 || echo "h2load exit $?" >> "$f"
  read -r reqs errs < <(awk '/^requests:/ {gsub(",", ""); print $8, $10 + $12 + $14; f = 1} END {if (!f) print "0 -1"}' "$f")
  measure_end "$t" "$reqs"
  rps=$(awk -v r="$reqs" -v d="$dur" 'BEGIN {printf "%.0f", r / d}')
  read -r p50 p99 < <(awk '{print $3}' "$f.log" 2>/dev/null | sort -n |
    awk '{a[NR] = $1} END {if (NR == 0) print "0 0"; else print a[int(NR * 0.5) + (NR * 0.5 > int(NR * 0.5))], a[int(NR * 0.99) + (NR * 0.99 > int(NR * 0.99))]}')
  gzip -1f "$f.log"
  echo "$rps $p50 $p99 $m_cpu $m_peak $errs" >> "$raw/S$s.$t.runs"
}
run_mixed() {  # scenario target run
  local s=$1 t=$2 i=$3 f slowf reqs rps p50 p99 p999 errs sreqs serrs x slow_pid
  f=$raw/S$s.$t.$i.fast.wrk slowf=$raw/S$s.$t.$i.slow.wrk
  local base="http://127.0.0.1:${port_sync[$t]}"
  wrk_run "$slowf" "$slow_conns" $((dur + 1)) "$base/sleep?ms=$slow_ms" "${host_sync[$t]}" &
  slow_pid=$!
  sleep 0.5
  measure_begin "$t"
  wrk_run "$f" "$fast_conns" "$dur" "$base$small_path" "${host_sync[$t]}"
  read -r reqs rps p50 p99 p999 errs < <(wrk_line "$f")
  wait "$slow_pid" || true
  read -r sreqs x x x x serrs < <(wrk_line "$slowf")
  measure_end "$t" $((reqs + sreqs * dur / (dur + 1)))
  echo "$rps $p50 $p99 $p999 $sreqs $m_cpu $m_peak $((errs + serrs))" >> "$raw/S$s.$t.runs"
}
declare -A idle_base
idle_once() {  # scenario target run port tls(0/1) count -> sets idle_result="held rss_kib per_conn_bytes failed"
  local s=$1 t=$2 i=$3 port=$4 tls=$5 count=$6 tree rss line ok failed per
  tree=$(proc_tree "$t" | tr '\n' ' ')
  coproc IDLE { exec timeout 150 taskset -c "$load_cpus" "$python" "$here/idle_conns.py" --port "$port" \
                  $([ "$tls" = 1 ] && echo --tls) --src "127.0.$tls.$((i + 1))" --conns "$count" --deadline 90 --hold 120 \
                  2> "$raw/S$s.$t.$i.idle$([ "$tls" = 1 ] && echo -tls).log"; }
  local idle_pid=$IDLE_PID
  line=""
  read -r -t 120 -u "${IDLE[0]}" line || true
  read -r _ ok failed <<< "${line:-x 0 $count}"
  sleep 0.5
  # shellcheck disable=SC2086
  rss=$(status_kib VmRSS $tree)
  local wfd=${IDLE[1]}
  exec {wfd}>&-
  wait "$idle_pid" 2>/dev/null || true
  per=$(awk -v a="$rss" -v b="${idle_base[$t]}" -v n="$ok" 'BEGIN {if (n > 0) printf "%.0f", (a - b) * 1024 / n; else print "-"}')
  idle_result="$ok $rss $per $failed"
}
# Every target's plaintext rounds first, then its TLS rounds (run numbers runs+1..2×runs; a
# handshake and one request on each): both against the RSS the proxy had before its first idle
# connection. A proxy keeps the heap a round grew to, so a plaintext round after a TLS one
# would count the TLS round's memory; a TLS round after plaintext ones grows past it.
run_idle() {  # scenario target run
  local s=$1 t=$2 i=$3
  # shellcheck disable=SC2046
  [ -z "${idle_base[$t]:-}" ] && idle_base[$t]=$(status_kib VmRSS $(proc_tree "$t"))
  if [ "$i" -le "$runs" ]; then
    idle_once "$s" "$t" "$i" "${port_h1[$t]}" 0 "$idle_conns"
    echo "$idle_result" >> "$raw/S$s.$t.plain"
  elif [ -z "${na_h2[$t]:-}" ]; then
    idle_once "$s" "$t" "$i" "${port_h2[$t]}" 1 "$idle_tls_conns"
    echo "$idle_result" >> "$raw/S$s.$t.tls"
  else
    echo "- - - -" >> "$raw/S$s.$t.tls"
  fi
  sleep 0.5  # let the proxy close its side
}

# Scenario 7: new TLS connections, each one handshake and one small request (Connection: close),
# from TLS_CLIENTS processes on the load CPUs: full handshakes with the ECDSA certificate (SNI
# localhost), with the RSA one (SNI rsa.bench), and resumed ones (the previous connection's
# ticket). Proxy CPU µs per connection = utime+stime ÷ completed connections.
run_tls() {  # scenario target run
  local s=$1 t=$2 i=$3 v f conns resumed errs line="" rates="" shares="" errsum=0 k=0
  for v in ec rsa resume; do
    f=$raw/S$s.$t.$i.$v.tls
    k=$((k + 1))
    measure_begin "$t"
    timeout $((dur + 30)) taskset -c "$load_cpus" "$python" "$here/tls_conns.py" --port "${port_h2[$t]}" \
      --src "127.0.1.$((i * 3 + k))" --procs "$tls_clients" --seconds "$dur" \
      --sni "$([ "$v" = rsa ] && echo rsa.bench || echo localhost)" $([ "$v" = resume ] && echo --resume) \
      > "$f" 2>&1 || echo "tls_conns exit $?" >> "$f"
    read -r conns resumed errs < <(awk '/^BENCH / {for (k = 2; k <= NF; k++) {split($k, kv, "="); v[kv[1]] = kv[2]}
      print v["conns"], v["resumed"], v["errors"]; f = 1} END {if (!f) print "0 0 -1"}' "$f")
    measure_end "$t" "$conns"
    line+="$m_cpu "
    rates+="$(awk -v n="$conns" -v d="$dur" 'BEGIN {printf "%.0f", n / d}') "
    [ "$v" = resume ] && shares=$(awk -v r="$resumed" -v n="$conns" 'BEGIN {if (n > 0) printf "%.0f", r * 100 / n; else print "-"}')
    errsum=$((errsum + errs))
  done
  echo "$line$rates$shares $errsum" >> "$raw/S$s.$t.runs"
}

# ---- the scenarios --------------------------------------------------------------------------
applies() {  # scenario target -> 0 when the target is measured in that scenario, else prints why not
  local s=$1 t=$2
  if [ -n "${na_all[$t]:-}" ]; then echo "${na_all[$t]}"; return 1; fi
  case $s in
    2|6|7) if [ -n "${na_h2[$t]:-}" ]; then echo "${na_h2[$t]}"; return 1; fi ;;
    3) [ "$t" = direct ] && { echo "n/a: the app's own cost is scenario 1's"; return 1; } ;;
    4) [ "$t" = direct ] && { echo "n/a: needs a balancer"; return 1; }
       [ "$t" = h2o ] && { echo "n/a: one upstream socket (h2o 2.2), no balancing"; return 1; } ;;
    5) [ "$t" = direct ] && { echo "n/a: no proxy"; return 1; } ;;
  esac
  return 0
}
one_run() {  # scenario target run
  case $1 in
    1) run_h1 "$1" "$2" "$3" "$small_path" ;;
    2) run_h2 "$1" "$2" "$3" "$small_path" ;;
    3) run_h1 "$1" "$2" "$3" "$big_path" ;;
    4) run_mixed "$1" "$2" "$3" ;;
    5) run_idle "$1" "$2" "$3" ;;
    6) run_h2 "$1" "$2" "$3" "$big_path" ;;
    7) run_tls "$1" "$2" "$3" ;;
  esac
}
# Scenario 5 runs first, on proxies that have not served anything yet: memory a proxy kept from
# earlier load would otherwise hide part of what idle connections cost.
run_order="$(for s in $scenarios; do [ "$s" = 5 ] && echo 5; done; true) $(for s in $scenarios; do [ "$s" != 5 ] && echo "$s"; done; true)"
# Wall time of each part, for the table at the end: "part seconds measured_seconds".
wall=$out/wall.txt
: > "$wall"
part_start=$SECONDS
log "set-up done in ${part_start}s"
echo "set-up $part_start 0" >> "$wall"
for s in $run_order; do
  part_start=$SECONDS
  dur=$base_dur
  [ "$s" = 7 ] && dur=$hs_dur
  measured=()
  for t in $targets; do applies "$s" "$t" > /dev/null && measured+=("$t"); done
  # Scenario 5 measures cold proxies; scenario 7 runs last, on proxies the others warmed, and
  # measures new connections, which a warm-up would not change.
  if [ "$warm" = 1 ] && [ "$s" != 5 ] && [ "$s" != 7 ]; then
    for t in "${measured[@]}"; do  # a short unrecorded run each: pools, caches, TLS sessions
      saved_dur=$dur dur=1; one_run "$s" "$t" 0 > /dev/null 2>&1 || true; dur=$saved_dur
      rm -f "$raw/S$s.$t.runs" "$raw/S$s.$t.0".*
    done
  fi
  last=$runs
  [ "$s" = 5 ] && last=$((2 * runs))  # plaintext rounds, then TLS rounds
  for i in $(seq 1 "$last"); do
    n=${#measured[@]}
    for k in $(seq 0 $((n - 1))); do  # rotate the order each run
      t=${measured[$(((k + i - 1) % n))]}
      log "scenario $s run $i/$last: $t"
      one_run "$s" "$t" "$i"
    done
  done
  if [ "$s" = 5 ]; then
    for t in "${measured[@]}"; do paste -d' ' "$raw/S5.$t.plain" "$raw/S5.$t.tls" > "$raw/S5.$t.runs"; done
  fi
  # measured: the seconds of load in the recorded runs (scenario 5: none fixed)
  case $s in 5) mdur=0 ;; 7) mdur=$((3 * dur)) ;; 4) mdur=$((dur + 1)) ;; *) mdur=$dur ;; esac
  echo "scenario-$s $((SECONDS - part_start)) $((runs * ${#measured[@]} * mdur))" >> "$wall"
done

# ---- summary ---------------------------------------------------------------------------------
col() {  # file field -> "median (min–max)"
  cut -d' ' -f"$2" "$1" | sed 's/^app://' | sort -g |
    awk -v runs="$runs" '{a[NR] = $1} END {if (NR == 0) {print "-"; exit}
      m = a[int((NR + 1) / 2)]; if (NR == 1 || a[1] == a[NR]) print m; else print m " (" a[1] "–" a[NR] ")"}'
}
med() { cut -d' ' -f"$2" "$1" | sed 's/^app://' | sort -g | awk '{a[NR] = $1} END {print (NR ? a[int((NR + 1) / 2)] : "")}'; }
mib() { awk '{printf "%.1f", $1 / 1024}'; }
row_na() { local t=$1 why=$2 cols=$3; printf '| %s | %s |%s\n' "$t" "$why" "$(printf ' |%.0s' $(seq 2 "$cols"))"; }
title() {
  case $1 in
    1) echo "1. HTTP/1.1 keep-alive, ${small_path#*=} B responses — wrk -t1 -c$conns -d${base_dur}s" ;;
    2) echo "2. HTTP/2 over TLS, ${small_path#*=} B responses — h2load -t1 -c$conns -m$h2_streams -D $base_dur" ;;
    3) echo "3. HTTP/1.1 keep-alive, 16 KiB responses — wrk -t1 -c$conns -d${base_dur}s" ;;
    4) echo "4. sync workers (concurrency = 1), mixed — fast: wrk -c$fast_conns $small_path; slow: $slow_conns connections of /sleep?ms=$slow_ms" ;;
    5) echo "5. idle keep-alive connections (one request each, then idle): $idle_conns plaintext, then $idle_tls_conns TLS" ;;
    6) echo "6. HTTP/2 over TLS, 16 KiB responses — h2load -t1 -c$conns -m$h2_streams -D $base_dur on $big_path" ;;
    7) echo "7. new TLS 1.3 connections per second per proxy core — $tls_clients client processes, one request per connection, ${hs_dur}s per run" ;;
  esac
}
{
  echo "# corral bench"
  echo
  echo "corral from $bin (source tree $(git -C "$here" describe --always --dirty 2>/dev/null || echo '?')), $(nginx -v 2>&1 | sed 's/.*: //'),"\
       "HAProxy $(haproxy -v 2>/dev/null | awk 'NR == 1 {print $3}'), $(nghttpx --version 2>/dev/null | awk '{print $2}'),"\
       "$(h2o --version 2>/dev/null | awk 'NR == 1 {print $1 "/" $3}'), $(wrk -v 2>&1 | awk 'NR == 1 {print $1, $2}'), h2load; $ncpu CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo))."
  echo "$workers test-app workers on Unix sockets (concurrency $concurrency; sync pool: concurrency 1), proxy pinned to CPU $proxy_cpu,"
  echo "load and workers on CPU $load_cpus. Median of $runs interleaved run(s) of ${base_dur}s, (min–max). CPU = the proxy's"
  echo "utime+stime ÷ completed requests; peak RSS = the proxy's VmHWM during the run (all its processes)."
  echo "h2o 2.2 proxies a path to one upstream URL: it sends every request to the first worker's socket (one"
  echo "upstream socket, no balancing), the others spread them over the $workers workers. TLS: TLS 1.3, ECDSA P-256"
  echo "certificate (RSA 2048 by SNI in scenario 7), the same files for every proxy."
  for s in $scenarios; do
    echo
    echo "## $(title "$s")"
    echo
    case $s in
      1|2|3) echo "| target | req/s | p50 µs | p99 µs | proxy CPU µs/req | proxy peak RSS MiB | errors |"
             echo "|---|---|---|---|---|---|---|" ;;
      4) echo "| target | fast req/s | fast p50 µs | fast p99 µs | fast p99.9 µs | slow requests | proxy CPU µs/req | proxy peak RSS MiB | errors |"
         echo "|---|---|---|---|---|---|---|---|---|" ;;
      5) echo "| target | plaintext: held | RSS MiB with them | per connection, bytes | failed | TLS: held | RSS MiB with them | per connection, bytes | failed |"
         echo "|---|---|---|---|---|---|---|---|---|" ;;
      6) echo "| target | req/s | p50 µs | p99 µs | proxy CPU µs/req | proxy peak RSS MiB | errors |"
         echo "|---|---|---|---|---|---|---|" ;;
      7) echo "| target | ECDSA P-256 full: proxy CPU µs/conn | handshakes/s per core | RSA 2048 full: µs/conn | handshakes/s per core | resumed: µs/conn | handshakes/s per core | resumed share % | conns/s (ECDSA, RSA, resumed) | errors |"
         echo "|---|---|---|---|---|---|---|---|---|---|" ;;
    esac
    for t in $targets; do
      f=$raw/S$s.$t.runs
      if ! why=$(applies "$s" "$t"); then
        case $s in 4|5) row_na "$t" "$why" 9 ;; 7) row_na "$t" "$why" 10 ;; *) row_na "$t" "$why" 7 ;; esac
        continue
      fi
      [ -s "$f" ] || { row_na "$t" "no result" 7; continue; }
      case $s in
        1|2|3|6) cpu=$(col "$f" 4); rss=$(med "$f" 5 | mib)
               [ "$t" = direct ] && { cpu="– (the app itself: $cpu)"; rss="– (the app: $rss)"; }
               echo "| $t | $(col "$f" 1) | $(col "$f" 2) | $(col "$f" 3) | $cpu | $rss | $(col "$f" 6) |" ;;
        4) echo "| $t | $(col "$f" 1) | $(col "$f" 2) | $(col "$f" 3) | $(col "$f" 4) | $(col "$f" 5) | $(col "$f" 6) | $(med "$f" 7 | mib) | $(col "$f" 8) |" ;;
        5) echo "| $t | $(col "$f" 1) | $(med "$f" 2 | mib) | $(col "$f" 3) | $(col "$f" 4) | $(col "$f" 5) | $(med "$f" 6 | mib) | $(col "$f" 7) | $(col "$f" 8) |" ;;
        7) per_core() { awk -v u="$(med "$f" "$1")" 'BEGIN {if (u > 0) printf "%.0f", 1e6 / u; else print "-"}'; }
           echo "| $t | $(col "$f" 1) | $(per_core 1) | $(col "$f" 2) | $(per_core 2) | $(col "$f" 3) | $(per_core 3) | $(col "$f" 7) |" \
                "$(med "$f" 4), $(med "$f" 5), $(med "$f" 6) | $(col "$f" 8) |" ;;
      esac
    done
  done
  echo
  echo "## corral against the targets (medians)"
  echo
  verdict() {  # label corral_value peer_values... (lower is better) -> line
    local label=$1 mine=$2; shift 2
    local best="" p
    for p in "$@"; do [[ "$p" =~ ^[0-9.]+$ ]] && { [ -z "$best" ] || awk -v a="$p" -v b="$best" 'BEGIN {exit !(a < b)}'; } && best=$p; done
    if ! [[ "$mine" =~ ^[0-9.]+$ ]] || [ -z "$best" ]; then echo "- $label: not measured"; return; fi
    if awk -v a="$mine" -v b="$best" 'BEGIN {exit !(a <= b)}'; then echo "- $label: met (corral $mine, target $best)"
    else echo "- $label: **not met** (corral $mine, target $best)"; fi
  }
  m() { [ -s "$raw/S$1.$2.runs" ] && med "$raw/S$1.$2.runs" "$3" || true; }
  [[ " $scenarios " == *" 1 "* ]] && verdict "HTTP/1.1 small, CPU µs/req ≤ HAProxy" "$(m 1 corral 4)" "$(m 1 haproxy 4)"
  if [[ " $scenarios " == *" 2 "* ]]; then
    best2=$(for p in nghttpx haproxy h2o; do m 2 "$p" 4; done | sort -g | head -1)
    verdict "HTTP/2 TLS, CPU µs/req ≤ 0.9 × best of nghttpx, HAProxy, h2o" "$(m 2 corral 4)" "$([ -n "$best2" ] && awk -v v="$best2" 'BEGIN {print v * 0.9}')"
  fi
  [[ " $scenarios " == *" 3 "* ]] && verdict "16 KiB, CPU µs/req ≤ HAProxy" "$(m 3 corral 4)" "$(m 3 haproxy 4)"
  [[ " $scenarios " == *" 6 "* ]] && verdict "HTTP/2 TLS 16 KiB, CPU µs/req ≤ best peer" "$(m 6 corral 4)" "$(m 6 nginx 4)" "$(m 6 haproxy 4)" "$(m 6 nghttpx 4)" "$(m 6 h2o 4)"
  if [[ " $scenarios " == *" 7 "* ]]; then
    verdict "TLS full handshake ECDSA, proxy CPU µs/conn ≤ best peer" "$(m 7 corral 1)" "$(m 7 nginx 1)" "$(m 7 haproxy 1)" "$(m 7 nghttpx 1)" "$(m 7 h2o 1)"
    verdict "TLS full handshake RSA, proxy CPU µs/conn ≤ best peer" "$(m 7 corral 2)" "$(m 7 nginx 2)" "$(m 7 haproxy 2)" "$(m 7 nghttpx 2)" "$(m 7 h2o 2)"
    verdict "TLS resumed handshake, proxy CPU µs/conn ≤ best peer" "$(m 7 corral 3)" "$(m 7 nginx 3)" "$(m 7 haproxy 3)" "$(m 7 nghttpx 3)" "$(m 7 h2o 3)"
  fi
  if [[ " $scenarios " == *" 4 "* ]]; then
    ng=$(m 4 nginx 3)
    verdict "mixed sync, fast p99 µs ≤ nginx's ÷ 5" "$(m 4 corral 3)" "$([ -n "$ng" ] && awk -v v="$ng" 'BEGIN {print v / 5}')"
    verdict "mixed sync, fast p99 µs ≤ HAProxy maxconn 1" "$(m 4 corral 3)" "$(m 4 haproxy 3)"
  fi
  if [[ " $scenarios " == *" 5 "* ]]; then
    verdict "idle connections, plaintext, RSS per connection ≤ nginx (bytes)" "$(m 5 corral 3)" "$(m 5 nginx 3)"
    verdict "idle connections, TLS, RSS per connection ≤ nginx (bytes)" "$(m 5 corral 7)" "$(m 5 nginx 7)"
  fi
  true
} > "$out/summary.md"
cat "$out/summary.md"

# The side benchmarks, each once everything above is stopped, so that it has the machine to
# itself. SIDES (default "wsgi") lists them; `make bench-side` runs the others on their own:
#   wsgi       a Flask app under corral and under Gunicorn + nginx; here the sync class (the
#              one the targets are about), 3 interleaved rounds of 4 s (WSGI_CLASSES,
#              WSGI_ROUNDS, WSGI_SECONDS change them)
#   legacy     the same C program as CGI and as a FastCGI pool, under corral and under
#              nginx + fcgiwrap / nginx + spawn-fcgi
#   admin      proxy CPU per request with `[proxy] admin` on and scraped every second against
#              off, and what one scrape costs
#   websocket  echo messages/s and proxy CPU per message through corral and through nginx in
#              front of the same python3-websockets app
#   compress   a 100 KiB JSON answer compressed by corral, gzip and brotli at several levels,
#              and by nginx's gzip at the same levels
#   static     a 1 KiB and a 1 MiB file served by corral-proxy itself against nginx's sendfile
part_start=$SECONDS
cleanup
trap - EXIT
echo "stop $((SECONDS - part_start)) 0" >> "$wall"
failed_sides=""
for side in ${SIDES-wsgi}; do
  part_start=$SECONDS
  rm -f "$out/$side.md"
  if [ "$side" = wsgi ]; then
    CLASSES=${WSGI_CLASSES:-sync} ROUNDS=${WSGI_ROUNDS:-3} SECONDS_PER_RUN=${WSGI_SECONDS:-4} \
      "$here/wsgi.sh" "$build" || { echo "bench: wsgi.sh failed" >&2; failed_sides+=" wsgi"; }
  else
    "$here/$side.sh" "$build" || { echo "bench: $side.sh failed" >&2; failed_sides+=" $side"; }
  fi
  echo "$side.sh $((SECONDS - part_start)) -" >> "$wall"
  if [ -f "$out/$side.md" ]; then { echo; cat "$out/$side.md"; } >> "$out/summary.md"; fi
done
{
  echo
  echo "## Wall time"
  echo
  echo "| part | seconds | of which load in recorded runs |"
  echo "|---|---|---|"
  awk '{printf "| %s | %d | %s |\n", $1, $2, $3; t += $2} END {printf "| total | %d (%.1f min) | |\n", t, t / 60}' "$wall"
} | tee -a "$out/summary.md"
[ -z "$failed_sides" ] || { echo "bench: failed:$failed_sides" >&2; exit 1; }
