#!/usr/bin/env bash
# The admin-listener benchmark: what `[proxy] admin` costs the proxy while it is scraped.
# Two corral instances from the same binaries, identical but for the admin listener:
#   off   admin = "off"
#   on    admin = "127.0.0.1:0", and while it is measured a scraper fetches /metrics and
#         /status.json (what the status page polls) once a second each, one connection each
# Each: one proxy thread pinned to CPU 0, access log off, one listener, app `pool` (http,
# corral-testapp, WORKERS workers of CONCURRENCY), like tests/bench/peers/corral.toml.in; wrk,
# the scraper, the supervisors and the workers run on the other CPUs.
# Workload (scenario 1 of run.sh): wrk -t1 -cCONNS on /big?bytes=100 for SECONDS_PER_RUN, after
# a 1 s unrecorded warm-up per instance; runs interleaved (off, on, off, on, ...). Proxy CPU
# µs/request = utime+stime of corral-proxy over the run ÷ completed requests; medians (min–max)
# and the on/off difference against the target (≤ 3 %). With no load it also measures the size
# of one /metrics (and /status.json) answer and the proxy CPU one fetch costs (SCRAPES fetches in
# a row, a new connection each: utime+stime ticks ÷ SCRAPES, and the scheduler's run time of the
# proxy's threads ÷ SCRAPES, which is not limited to the tick's 10 ms resolution; then all on one
# keep-alive connection), with /healthz and an app request as the references, and each idle
# proxy's own CPU per second.
# Writes BUILD/bench/admin.md and raw files to BUILD/bench/admin-raw/. Starts everything it
# measures itself and stops only that.
#
# usage: tests/bench/admin.sh [BUILD_DIR]
# env:   BENCH_QUICK=1 (2 runs of 2 s)  RUNS (5)  SECONDS_PER_RUN (8)  WORKERS (4)
#        CONCURRENCY (8)  CONNS (32)  SCRAPES (200)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
bin=$(cd "$build/bin" && pwd)
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
bench_durations 5 8 2 2
workers=${WORKERS:-4}
concurrency=${CONCURRENCY:-8}
conns=${CONNS:-32}
scrapes=${SCRAPES:-200}
[ "${BENCH_QUICK:-0}" = 1 ] && scrapes=${SCRAPES:-50}  # a smoke run: 200 curl starts per URL are most of its time
path='/big?bytes=100'
target_pct=3

need_tools "admin bench" wrk curl taskset python3
bench_begin "admin bench" admin-raw crl-admb

# Scheduler run time (ns) of every thread of the pids given, summed.
run_ns() {
  local p t sum=0 v
  for p in "$@"; do
    for t in /proc/"$p"/task/*/schedstat; do
      v=$(awk '{print $1}' "$t" 2>/dev/null || echo 0)
      sum=$((sum + ${v:-0}))
    done
  done
  echo "$sum"
}

declare -A c_port c_proxy c_admin
start_corral() {  # name admin-value -> fills c_port c_proxy c_admin for name
  local name=$1 dir=$tmp/$1
  mkdir -p "$dir"
  corral_pool_toml "$dir" "admin = \"$2\"" > "$dir/corral.toml"
  corral_start "corral.$name" "$dir"
  wait_http "$corral_port" "$path" || { echo "corral ($name) does not answer $path" >&2; tail -20 "$raw/corral.$name.log" >&2; exit 1; }
  c_port[$name]=$corral_port c_proxy[$name]=$corral_proxy c_admin[$name]=$corral_admin
}

start_corral off off
start_corral on 127.0.0.1:0
admin=${c_admin[on]}
[ "$admin" != - ] || { echo "admin bench: the admin listener of 'on' is not bound (status: $raw/corral.on.status.json)" >&2; exit 1; }
wait_http "${admin##*:}" /metrics || { echo "admin bench: $admin/metrics does not answer" >&2; exit 1; }

# Fetches /metrics and /status.json once a second each ($2 times; a new connection each time,
# like a scraper and the status page), one line per /metrics answer to $1.
scraper() {
  local k tick
  for k in $(seq 1 "$2"); do
    sleep 1 &
    tick=$!
    curl -s -o /dev/null --max-time 5 "http://$admin/metrics" && echo "$k" >> "$1"
    curl -s -o /dev/null --max-time 5 "http://$admin/status.json" || true
    wait "$tick" 2>/dev/null || true
  done
}

# One run: wrk on instance $1 (while the scraper runs, for `on`); appends a row to $raw/runs:
#   instance run req/s p50_us p99_us cpu_us/req errors scrapes
measure() {  # instance run warm(0/1)
  local name=$1 i=$2 d=$dur f before after sp="" scraped=0 pids
  [ "$3" = 1 ] && d=1
  f=$raw/$name.$i.wrk
  pids=$(echo "${c_proxy[$name]}"; pgrep -P "${c_proxy[$name]}" || true)
  if [ "$name" = on ]; then
    : > "$raw/$name.$i.scrapes"
    scraper "$raw/$name.$i.scrapes" "$d" &
    sp=$!
    started+=("$sp")
    taskset -pc "$load_cpus" "$sp" > /dev/null
  fi
  # shellcheck disable=SC2086
  before=$(cpu_ticks $pids)
  timeout $((d + 30)) taskset -c "$load_cpus" wrk -t1 -c"$conns" -d"${d}s" --timeout 10s -s "$here/stats.lua" \
    "http://127.0.0.1:${c_port[$name]}$path" > "$f" 2>&1 || echo "wrk exit $?" >> "$f"
  # shellcheck disable=SC2086
  after=$(cpu_ticks $pids)
  if [ -n "$sp" ]; then
    wait "$sp" || true
    forget_pid "$sp"
    scraped=$(wc -l < "$raw/$name.$i.scrapes")
  fi
  [ "$3" = 1 ] && { rm -f "$f" "$raw/$name.$i.scrapes"; return; }
  awk -v a="$after" -v b="$before" -v c="$clk" -v name="$name" -v i="$i" -v s="$scraped" "$bench_awk"' /^BENCH / {
      bench_fields()
      n = v["requests"]; found = 1; cpu = "-"
      if (n > 0) cpu = sprintf("%.2f", (a - b) / c * 1e6 / n)
      printf "%s %d %.0f %d %d %s %d %d\n", name, i, n / (v["duration_us"] / 1e6), v["p50"], v["p99"], cpu, v["errors"] + v["status"], s}
      END {if (!found) print name, i, 0, 0, 0, "-", -1, s}' "$f" >> "$raw/runs"
  log "run $i/$runs $name: $(tail -1 "$raw/runs" | cut -d' ' -f3-)"
}

: > "$raw/runs"
measure off 0 1
measure on 0 1
for i in $(seq 1 "$runs"); do
  measure off "$i" 0
  measure on "$i" 0
done

# ---- one fetch, no load ----
sleep 1
curl -s -o "$raw/metrics.txt" "http://$admin/metrics"
curl -s -o "$raw/status.json" "http://$admin/status.json"
# Proxy CPU per fetch of a URL from instance $1's proxy, SCRAPES fetches in a row: each on a new
# connection (one curl each, like the scraper above), then all on one keep-alive connection
# (one curl). Appends "label bytes new_ticks_us new_run_us keepalive_run_us connections" to
# $raw/fetches (connections = those the keep-alive curl opened: 1 when the connection is reused).
fetch_cost() {  # instance url label
  local p=${c_proxy[$1]} url=$2 t0 t1 n0 n1 n2 bytes conns
  bytes=$(curl -s -o /dev/null -w '%{size_download}' "$url")
  t0=$(cpu_ticks "$p") n0=$(run_ns "$p")
  for _ in $(seq 1 "$scrapes"); do taskset -c "$load_cpus" curl -s -o /dev/null "$url"; done
  t1=$(cpu_ticks "$p") n1=$(run_ns "$p")
  for _ in $(seq 1 "$scrapes"); do printf 'url = "%s"\noutput = "/dev/null"\n' "$url"; done > "$tmp/keepalive.curl"
  conns=$(taskset -c "$load_cpus" curl -s -K "$tmp/keepalive.curl" -w '%{num_connects}\n' | awk '{n += $1} END {print n + 0}')
  n2=$(run_ns "$p")
  awk -v l="$3" -v b="$bytes" -v t="$((t1 - t0))" -v n="$((n1 - n0))" -v k2="$((n2 - n1))" -v c="$clk" -v k="$scrapes" -v cn="$conns" \
    'BEGIN {printf "%s %s %.0f %.0f %.0f %d\n", l, b, t / c * 1e6 / k, n / 1e3 / k, k2 / 1e3 / k, cn}' >> "$raw/fetches"
  log "fetch $3: $(tail -1 "$raw/fetches" | cut -d' ' -f2-)"
}
: > "$raw/fetches"
fetch_cost on "http://$admin/metrics" /metrics
fetch_cost on "http://$admin/status.json" /status.json
fetch_cost on "http://$admin/healthz" /healthz
fetch_cost off "http://127.0.0.1:${c_port[off]}$path" "app:$path"
# Each idle proxy's own CPU (nothing fetched, no load), per second: what the fetches above
# include beside themselves, and what the admin listener costs when nobody scrapes it.
idle_cpu() {  # instance -> µs per second over 3 s
  local n0 n1
  n0=$(run_ns "${c_proxy[$1]}"); sleep 3; n1=$(run_ns "${c_proxy[$1]}")
  awk -v n="$((n1 - n0))" 'BEGIN {printf "%.0f", n / 1e3 / 3}'
}
idle_off=$(idle_cpu off) idle_on=$(idle_cpu on)
echo "off $idle_off on $idle_on" > "$raw/idle_us_per_s"
log "idle proxy CPU: off $idle_off µs/s, on $idle_on µs/s"

# ---- summary ----
field() { awk -v n="$1" '$1 == n {print $'"$2"'}' "$raw/runs"; }  # instance field -> its values
col() { field "$1" "$2" | median_range; }
med() { field "$1" "$2" | median; }
cpu_off=$(med off 6) cpu_on=$(med on 6)
# The same difference run by run (run i of `off` against run i of `on`, measured next to each
# other): less sensitive to the machine's load drifting over the whole bench.
paired=$(awk '$1 == "off" {o[$2] = $6} $1 == "on" {n[$2] = $6} END {for (i in o) if (o[i] > 0 && (i in n)) print (n[i] / o[i] - 1) * 100}' "$raw/runs" |
  sort -g | awk '{a[NR] = $1} END {if (NR) printf "%+.1f %% (%+.1f to %+.1f)", a[int((NR + 1) / 2)], a[1], a[NR]; else print "-"}')
{
  echo "# Admin listener: proxy CPU with it on and scraped every second"
  echo
  echo "$(bench_env), proxy (1 thread) pinned to CPU $proxy_cpu, wrk,"
  echo "scraper, supervisor and $workers test-app workers (concurrency $concurrency) on CPU $load_cpus."
  echo "wrk -t1 -c$conns -d${dur}s on $path; median of $runs interleaved runs (off, on, ...) after a 1 s warm-up, (min–max)."
  echo "\`on\`: /metrics and /status.json fetched once a second each during the run. CPU = corral-proxy's utime+stime ÷ requests."
  echo
  echo "| instance | req/s | p50 µs | p99 µs | proxy CPU µs/req | errors | /metrics scrapes in the run |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  echo "| admin = \"off\" | $(col off 3) | $(col off 4) | $(col off 5) | $(col off 6) | $(col off 7) | – |"
  echo "| admin on, scraped every 1 s | $(col on 3) | $(col on 4) | $(col on 5) | $(col on 6) | $(col on 7) | $(col on 8) |"
  echo
  echo "| one fetch, no load | response bytes | proxy CPU µs, new connection each (ticks ÷ $scrapes) | same (run time ÷ $scrapes) | proxy CPU µs, one keep-alive connection (run time ÷ $scrapes) |"
  echo "|---|---:|---:|---:|---:|"
  awk '{l = $1; if (l ~ /^app:/) l = substr(l, 5) " on the app listener (admin off), for comparison"
        else if (l == "/healthz") l = l " (the floor: a request with nearly no content)"
        ka = $5; if ($6 > 1) ka = ka " (" $6 " connections: not kept alive)"
        printf "| %s | %s | %s | %s | %s |\n", l, $2, $3, $4, ka}' "$raw/fetches"
  echo
  echo "Idle proxy CPU (no load, nothing fetched): admin off $idle_off µs/s, admin on $idle_on µs/s."
  echo
  echo "Run by run (on ÷ off − 1): $paired"
  echo
  # The same cost from the no-load figures, free of the run-to-run noise: one /metrics and one
  # /status.json fetch (new connection each) plus what the idle listener costs, every second,
  # against the proxy CPU the load takes per second.
  awk -v rps="$(med on 3)" -v cpu="$cpu_off" -v ioff="$idle_off" -v ion="$idle_on" '
    $1 == "/metrics" {m = $4} $1 == "/status.json" {s = $4}
    END {if (rps > 0 && cpu > 0) printf "From the no-load figures: (%d + %d + %d) µs each second ÷ (%d req/s × %s µs) = %+.1f %% (an estimate: a fetch on an idle proxy also pays its wake-up, and what the fetches do to the caches the requests use is not in it)\n",
      m, s, ion - ioff, rps, cpu, (m + s + ion - ioff) / (rps * cpu) * 100}' "$raw/fetches"
  echo
  if [ -n "$cpu_off" ] && [ -n "$cpu_on" ] && awk -v o="$cpu_off" 'BEGIN {exit !(o > 0)}'; then
    awk -v o="$cpu_off" -v n="$cpu_on" -v t="$target_pct" 'BEGIN {
      d = (n / o - 1) * 100
      printf "admin on and scraped every second: %+.1f %% proxy CPU per request (target ≤ %d %%) — %s\n", d, t, (d <= t ? "met" : "**not met**")}'
  else
    echo "admin on and scraped every second: not measured (target ≤ $target_pct %)"
  fi
} | tee "$out/admin.md"
