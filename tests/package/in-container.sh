#!/bin/sh
# Runs inside the booted test container (as root, under its systemd), from run.sh.
# Usage: in-container.sh deb|rpm DIR   (DIR holds the package and, for deb, upgrade/ the next version)
# Prints "ok", "FAIL" or "PENDING" per check; exits with the number of failures.
set -u
kind=$1
dir=$2
failures=0
export PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8
out=/tmp/check.out

pass() { echo "ok      - $kind: $1"; }
fail() {
  echo "FAIL    - $kind: $1"; failures=$((failures + 1)); sed 's/^/          /' "$out" | tail -25
  echo "          the service's last log lines:"
  journalctl -u corral.service -n 12 --no-pager 2>/dev/null | sed 's/^/          | /'
  journalctl -u corral.service --no-pager 2>/dev/null | grep -v 'GET / HTTP' | grep -i ' warn \| error ' | head -20 | sed 's/^/          # /'
  ls -la /run/corral 2>&1 | sed 's/^/          | /'
}
pending() { echo "PENDING - $kind: $1"; }
check() {
  desc=$1; shift
  if "$@" >"$out" 2>&1; then pass "$desc"; else fail "$desc"; fi
}
# Repeats a command for up to $1 tenths of a second until it succeeds.
within() {
  n=$1; shift
  while ! "$@" >"$out" 2>&1; do
    n=$((n - 1)); [ "$n" -le 0 ] && return 1
    sleep 0.1
  done
}
page() { curl -fsS --max-time 5 http://127.0.0.1:8080/ | grep -q "corral is running"; }
main_pid() { systemctl show -p MainPID --value corral.service; }
# Pids of the processes named $1 (comm, 15 characters at most), sorted, on one line.
pids_of() { for p in /proc/[0-9]*; do [ "$(cat "$p/comm" 2>/dev/null)" = "$1" ] && echo "${p#/proc/}"; done | sort -n | tr '\n' ' '; }

# Load during an upgrade: 2 clients that open a new connection per request and 2 that send
# 50 requests per keep-alive connection, until /tmp/load.stop exists. Every status line goes
# to /tmp/load.N; load_result counts them: "<requests> <failed> <worst ms>" (failed: not 200).
load_start() {
  rm -f /tmp/load.stop /tmp/load.[0-9]*
  for n in 1 2; do
    ( while [ ! -e /tmp/load.stop ]; do
        curl -s -o /dev/null -w '%{http_code} %{time_total}\n' --max-time 10 http://127.0.0.1:8080/ >> /tmp/load.$n 2>/dev/null
      done ) &
  done
  # -o applies to one URL: one per URL, so the bodies go nowhere and only -w's lines are kept.
  urls=$(for i in $(seq 1 50); do printf -- '-o /dev/null http://127.0.0.1:8080/?%s ' "$i"; done)
  for n in 3 4; do
    ( while [ ! -e /tmp/load.stop ]; do
        # shellcheck disable=SC2086
        curl -s -w '%{http_code} %{time_total}\n' --max-time 10 $urls >> /tmp/load.$n 2>/dev/null
      done ) &
  done
}
# The proxy's pid is no longer $1 (the retired one has exited) / no proxy runs a deleted file.
proxy_replaced() { p=$(pids_of corral-proxy); [ -n "$p" ] && [ "$p" != "$1" ]; }
proxy_runs_new_binary() {
  for p in $(pids_of corral-proxy); do readlink "/proc/$p/exe" | grep -q deleted && return 1; done
  return 0
}
# For comparison, the same load across `systemctl restart` (a figure, not a check: a restart
# closes the listening sockets and boots the app again, so requests fail).
restart_figure() {
  load_start
  sleep 1
  systemctl restart corral.service
  within 100 page
  sleep 2
  load_stop
  set -- $(load_result)
  echo "        load across systemctl restart, for comparison: $1 requests, $2 failed, worst $3 ms"
}
load_stop() { : > /tmp/load.stop; wait; }
load_result() { cat /tmp/load.[0-9]* | awk '{ n++; if ($1 != "200") f++; if ($2 > w) w = $2 } END { print n + 0, f + 0, w * 1000 }'; }

# An upgrade of the running service ($1: what installs the next version) under load: the
# supervisor re-executes the new binary in place (same MainPID, no longer a deleted file), the
# app's workers keep their pids, the proxy is replaced, and no request fails.
upgrade_in_place_checks() {
  old=$(main_pid); workers=$(pids_of corral-placehol); proxy=$(pids_of corral-proxy)
  load_start
  sleep 1
  check "upgrade installs (under load)" "$@"
  sleep 2
  load_stop
  set -- $(load_result)
  echo "        load across the upgrade: $1 requests, $2 failed, worst $3 ms" >"$out"; cat "$out"
  check "upgrade under load: no failed request" test "$2" = 0
  check "upgrade under load: requests kept flowing" test "$1" -ge 100
  check "upgraded in place: same MainPID" test "$(main_pid)" = "$old"
  check "upgraded in place: the supervisor runs the new binary" sh -c "! readlink /proc/$old/exe | grep -q deleted"
  check "upgraded in place: the app's workers kept their pids" test "$(pids_of corral-placehol)" = "$workers"
  check "upgraded in place: the proxy was replaced" within 100 proxy_replaced "$proxy"
  check "upgraded in place: the new proxy runs the new binary" within 100 proxy_runs_new_binary
}
active() { [ "$(systemctl is-active corral.service)" = active ]; }
verify_quiet() {
  # systemd-analyze verify exits 0 on many problems: any output is a failure.
  o=$(systemd-analyze verify --man=no /usr/lib/systemd/system/corral.service 2>&1)
  [ -z "$o" ] || { echo "$o"; return 1; }
}

installed_and_running() {
  check "service enabled" systemctl is-enabled --quiet corral.service
  check "service active" within 100 active
  check "placeholder page served" within 50 page
  check "corralctl status answers" corralctl status
  check "systemd-analyze verify prints nothing" verify_quiet
  check "corral user exists" getent passwd corral
  check "one version everywhere" sh -c '
    v=$(corral-supervisor --version | cut -d" " -f2)
    [ "$(corral-proxy --version | cut -d" " -f2)" = "$v" ] && [ "$(corralctl --version | cut -d" " -f2)" = "$v" ] &&
    { dpkg-query -W -f="\${Version}" corral 2>/dev/null || rpm -q --qf "%{VERSION}" corral; } | grep -q "^$v"'
}

# The placeholder app and the proxy run as the corral user (supervisor.user, app user).
user_check() {
  uid=$(id -u corral 2>/dev/null) || { echo "no corral user" >"$out"; fail "processes run as corral"; return; }
  for name in corral-placehol corral-proxy; do
    u=$(for p in /proc/[0-9]*; do [ "$(cat "$p/comm" 2>/dev/null)" = "$name" ] && awk '/^Uid:/ { print $2 }' "$p/status"; done | head -1)
    if [ "$u" = "$uid" ]; then pass "$name runs as corral"; else pending "$name runs as uid ${u:-?}, not corral (privilege drop not in this build)"; fi
  done
}

reload_checks() {
  if ! corralctl 2>&1 | grep -q reload; then
    pending "corralctl reload not implemented yet: reload checks skipped"
    return
  fi
  check "systemctl reload succeeds" systemctl reload corral.service
  check "page served after reload" within 50 page
  # The proxy (user corral) opens new connections to the worker sockets and writes request
  # bodies to temp_dir: a reload must not give either back to root.
  check "worker sockets keep the proxy's group after a reload" sh -c '[ "$(stat -c %G /run/corral/hello.0.sock)" = corral ]'
  check "temp_dir keeps the proxy's user after a reload" sh -c '[ "$(stat -c %U /var/lib/corral/body)" = corral ]'
  cp /etc/corral/corral.toml /tmp/good.toml
  sed -i '1i bogus_key = 1' /etc/corral/corral.toml
  check "reload of a bad config fails" sh -c '! systemctl reload corral.service'
  check "service stays up after a failed reload" sh -c '[ "$(systemctl is-active corral.service)" = active ]'
  check "page still served after a failed reload" page
  cp /tmp/good.toml /etc/corral/corral.toml
}

watchdog_check() {
  if ! grep -q "WATCHDOG=1" /usr/sbin/corral-supervisor; then
    pending "the supervisor sends no WATCHDOG=1 yet: WatchdogSec=30s would restart it every 30 s"
    return
  fi
  check "watchdog pings arrive" within 100 sh -c '[ "$(systemctl show -p WatchdogTimestampMonotonic --value corral.service)" != 0 ]'
}

kill9_check() {
  old=$(main_pid)
  kill -9 "$old"
  check "kill -9 of the supervisor: systemd restarts it" within 150 sh -c "p=\$(systemctl show -p MainPID --value corral.service); [ \"\$p\" != 0 ] && [ \"\$p\" != $old ] && [ \"\$(systemctl is-active corral.service)\" = active ]"
  check "page served after the restart" within 50 page
}

if [ "$kind" = deb ]; then
  check "apt installs the .deb (dependencies from apt)" apt-get install -y -q --no-install-recommends "$dir"/corral_*.deb
  installed_and_running
  user_check
  reload_checks
  watchdog_check
  kill9_check
  sed -i 's/^log_level = "info"/log_level = "warn"  # edited by the admin/' /etc/corral/corral.toml
  upgrade_in_place_checks apt-get install -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$dir"/upgrade/corral_*.deb
  check "upgrade keeps the edited config" grep -q "edited by the admin" /etc/corral/corral.toml
  check "upgrade leaves the new config as .dpkg-dist" test -f /etc/corral/corral.toml.dpkg-dist
  restart_figure
  check "page served after the upgrade" within 50 page
  check "remove" apt-get remove -y -q corral
  check "remove stopped the service" sh -c '! systemctl is-active --quiet corral.service'
  check "remove stopped every corral process" within 50 sh -c '! { for p in /proc/[0-9]*; do cat $p/comm 2>/dev/null; done | grep -q "^corral"; }'
  check "remove keeps the config" test -f /etc/corral/corral.toml
  check "purge" apt-get purge -y -q corral
  check "purge leaves nothing" sh -c '
    for p in /etc/corral /var/lib/corral /var/log/corral /run/corral /usr/lib/corral /usr/sbin/corral-supervisor \
             /usr/lib/systemd/system/corral.service /etc/systemd/system/multi-user.target.wants/corral.service \
             /var/lib/systemd/deb-systemd-helper-enabled/corral.service /etc/logrotate.d/corral; do
      [ -e "$p" ] && { echo "left: $p"; exit 1; }
    done
    getent passwd corral && { echo "left: user corral"; exit 1; }
    getent group corral && { echo "left: group corral"; exit 1; }
    dpkg-query -W corral 2>/dev/null && { echo "left: dpkg record"; exit 1; }
    exit 0'
else
  rpmfile=$(ls "$dir"/corral-*.rpm)
  # rpm's database here knows no Debian packages, so autoreq'd requirements are checked
  # against the system by hand: every shared library must resolve, /bin/sh and systemd exist.
  check "every autoreq'd library requirement is present" sh -c '
    for lib in $(rpm -qpR "'"$rpmfile"'" | sed -n "s/^\(lib[^()]*\.so[^()]*\)(.*/\1/p" | sort -u); do
      ldconfig -p | grep -q "^[[:space:]]*$lib (libc6,x86-64)" || { echo "missing $lib"; exit 1; }
    done
    test -x /bin/sh && command -v systemctl && command -v useradd'
  check "rpm -i installs the .rpm" rpm -i --nodeps "$rpmfile"
  systemctl is-enabled --quiet corral.service 2>/dev/null || true
  installed_and_running
  reload_checks
  kill9_check
  sed -i 's/^log_level = "info"/log_level = "warn"  # edited by the admin/' /etc/corral/corral.toml
  upgrade_in_place_checks rpm -U --nodeps --replacepkgs "$rpmfile"
  check "upgrade keeps the edited config" grep -q "edited by the admin" /etc/corral/corral.toml
  check "page served after the upgrade" within 50 page
  check "rpm -e" rpm -e --nodeps corral
  check "rpm -e stopped and disabled the service" sh -c '! systemctl is-active --quiet corral.service && ! systemctl is-enabled --quiet corral.service'
  check "rpm -e stopped every corral process" within 50 sh -c '! { for p in /proc/[0-9]*; do cat $p/comm 2>/dev/null; done | grep -q "^corral"; }'
  check "rpm -e keeps the edited config as .rpmsave" test -f /etc/corral/corral.toml.rpmsave
  check "rpm -e removes the package files" sh -c '
    for p in /usr/sbin/corral-supervisor /usr/sbin/corral-proxy /usr/bin/corralctl /usr/lib/corral \
             /usr/lib/systemd/system/corral.service /etc/logrotate.d/corral; do
      [ -e "$p" ] && { echo "left: $p"; exit 1; }
    done; exit 0'
fi
exit "$failures"
