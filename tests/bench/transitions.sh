#!/usr/bin/env bash
# The transition benchmark: failed requests and worst latency under a steady 100 requests/s
# across each way of changing a running corral, for an app that takes 2 s to boot
# (corral-testapp behind `sleep 2`, 3 workers):
#   reload            corralctl reload with the app's env changed: a new generation of workers
#                     boots (2 s) while the old one serves
#   upgrade           the binaries replaced on disk (new files, as a package manager writes
#                     them), then corralctl upgrade: the supervisor re-executes in place and
#                     replaces the proxy; the workers stay
#   restart-proxy     corralctl restart-proxy: a new proxy, make before break
#   restart           what `systemctl restart` does: SIGTERM to the supervisor, wait for its
#                     exit, start it again (listeners closed, workers boot 2 s)
# Load: tests/bench/paced_load.py, 8 threads (4 keep-alive, 4 a new connection per request),
# from 2 s before the transition to 3 s after corral serves again.
# Writes BUILD/bench/transitions.md; raw logs in BUILD/bench/transitions-raw/.
#
# usage: tests/bench/transitions.sh [BUILD_DIR]      env: RATE (100)  BOOT_SECONDS (2)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
bin=$(cd "$build/bin" && pwd)
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
rate=${RATE:-100}
boot=${BOOT_SECONDS:-2}
need_tools "transitions bench" curl python3
bench_begin "transitions" transitions-raw crl-trans

# A private copy of the binaries: the upgrade replaces them on disk.
inst=$tmp/bin
mkdir -p "$inst"
for b in corral-supervisor corral-proxy corralctl corral-worker corral-testapp; do cp "$bin/$b" "$inst/"; done
cat > "$inst/slow-boot" <<SH
#!/bin/sh
# The app takes $boot s to boot, then serves on the socket corral passed (LISTEN_FDS).
sleep $boot
exec "$inst/corral-testapp" "\$@"
SH
chmod 755 "$inst/slow-boot"
dir=$tmp/corral
mkdir -p "$dir"
port=$(free_port)
write_config() {  # generation
  cat > "$dir/corral.toml" <<TOML
[supervisor]
runtime_dir = "$dir/run"
log_level = "info"

[proxy]
access_log = "off"

[[listener]]
address = "127.0.0.1:$port"

[[route]]
path = "/"
app = "slow"

[app.slow]
kind = "http"
command = ["$inst/slow-boot"]
workers = 3
boot_timeout = "20s"
env = { GENERATION = "$1" }
TOML
}
ctl() { "$inst/corralctl" --socket "$dir/run/control.sock" "$@"; }
sup=
start_corral() {
  "$inst/corral-supervisor" -c "$dir/corral.toml" >> "$raw/corral.log" 2>&1 &
  sup=$!
  started+=("$sup")
  for _ in $(seq 1 300); do
    ctl status --json 2>/dev/null | grep -q '"state":"running"' && wait_http "$port" / && return 0
    sleep 0.1
  done
  echo "corral does not come up; log:" >&2
  tail -20 "$raw/corral.log" >&2
  exit 1
}
write_config 1
start_corral

results=()
measure() {  # name command...
  local name=$1
  shift
  rm -f "$tmp/stop"
  python3 "$here/paced_load.py" 127.0.0.1 "$port" / "$rate" 8 "$tmp/stop" "$raw/$name.json" &
  local load=$!
  sleep 2
  local t=$SECONDS rc=0
  log "$name"
  "$@" >> "$raw/$name.out" 2>&1 || rc=$?
  local took=$((SECONDS - t))
  wait_http "$port" / || true
  sleep 3
  : > "$tmp/stop"
  wait "$load"
  results+=("$(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print("| %s | %s | %d | %d | %.1f | %.1f | %s |" % (sys.argv[2], sys.argv[3], r["requests"], r["failed"], r["p99_ms"], r["worst_ms"],
      "; ".join("%.1fs %s" % (f[0], f[1]) for f in r["failures"][:3]) or "-"))' "$raw/$name.json" "$name" "$([ $rc = 0 ] && echo "ok, ${took} s" || echo "exit $rc")")")
}

do_reload() { write_config "$1" && ctl reload; }
do_upgrade() {
  # New files with the same names, as dpkg and rpm write them (the running ones are then deleted files).
  for b in corral-supervisor corral-proxy corralctl corral-worker; do cp "$bin/$b" "$inst/$b.new" && mv -f "$inst/$b.new" "$inst/$b"; done
  ctl upgrade
}
do_restart() {
  kill -TERM "$sup"
  wait "$sup" || true
  forget_pid "$sup"
  start_corral
}

measure reload do_reload 2
usage=$(ctl 2>&1 || true)
if grep -q ' upgrade' <<< "$usage"; then measure upgrade do_upgrade; else log "corralctl has no upgrade: skipped"; fi
if grep -q restart-proxy <<< "$usage"; then measure restart-proxy ctl restart-proxy; else log "corralctl has no restart-proxy: skipped"; fi
measure restart do_restart

{
  echo "# Transitions under load: $rate requests/s, an app that boots in $boot s"
  echo
  echo "| transition | command | requests | failed | p99 ms | worst ms | first failures |"
  echo "|---|---|---:|---:|---:|---:|---|"
  printf '%s\n' "${results[@]}"
  echo
  echo "Load: tests/bench/paced_load.py (8 threads: 4 keep-alive, 4 a new connection per request) from 2 s before the command to 3 s after corral serves again. $(nproc) CPUs, $(date -u +%F)."
} > "$out/transitions.md"
cat "$out/transitions.md"
