#!/bin/sh
# make package-test: static checks, then a real install under a real systemd.
# Usage: tests/package/run.sh PACKAGES_DIR     (root; network on the first run)
#
#  1. systemd-analyze security --offline (<= 5.5); verify (no output allowed) runs in the container
#  2. lintian --fail-on warning, rpmlint (0 errors, 0 warnings), piuparts
#  3. boots a bookworm root (prepare-root.sh, cached) with systemd-nspawn -b on a throw-away
#     overlay and runs in-container.sh for the .deb, then for the .rpm
# Every step is bounded by timeout(1); mounts and the container are removed on exit.
set -u
PKGS=$(cd "${1:?usage: run.sh PACKAGES_DIR}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${CACHE:-/var/cache/corral-package-test}
MAX_SCORE=${MAX_SCORE:-5.5}
[ "$(id -u)" = 0 ] || { echo "package-test: needs root (debootstrap, mount, systemd-nspawn)" >&2; exit 2; }
deb=$(ls "$PKGS"/corral_*.deb) && rpmf=$(ls "$PKGS"/corral-*.rpm) || { echo "package-test: no packages in $PKGS" >&2; exit 2; }
start=$(date +%s)
failures=0
WORK=$(mktemp -d /tmp/crl-pkgtest-XXXXXX)
NSPAWN_PID=

step() { printf '\n== %s (%ss)\n' "$1" "$(( $(date +%s) - start ))"; }
result() { if [ "$1" = 0 ]; then echo "ok      - $2"; else echo "FAIL    - $2"; failures=$((failures + 1)); fi; }

cleanup() {
  if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
    kill -TERM "$NSPAWN_PID" 2>/dev/null   # nspawn asks the container's systemd to power off
    i=0; while kill -0 "$NSPAWN_PID" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "$NSPAWN_PID" 2>/dev/null
  fi
  for m in "$WORK/root/var/cache/apt/archives" "$WORK/root/proc" "$WORK/root"; do
    mountpoint -q "$m" 2>/dev/null && umount -l "$m"
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

step "unit file"
mkdir -p "$WORK/x" && dpkg-deb -x "$deb" "$WORK/x"
unit=$WORK/x/usr/lib/systemd/system/corral.service
# systemd-analyze verify needs the installed system: in-container.sh runs it under the real systemd.
score=$(systemd-analyze security --offline=true --root="$WORK/x" "$unit" 2>/dev/null | sed -n 's/.*Overall exposure level for corral.service: \([0-9.]*\).*/\1/p')
echo "        security exposure: ${score:-?} (at most $MAX_SCORE)"
awk -v s="${score:-99}" -v m="$MAX_SCORE" 'BEGIN { exit !(s <= m) }'; result $? "systemd-analyze security --offline at or below $MAX_SCORE"

step "lintian"
timeout 300 lintian --fail-on warning --info --display-experimental "$deb"; result $? "lintian --fail-on warning"
step "rpmlint"
timeout 300 rpmlint --strict -c "$HERE/rpmlint.toml" "$rpmf" > "$WORK/rpmlint.out" 2>&1
cat "$WORK/rpmlint.out" | grep -v '^=\+ rpmlint\|^rpmlint:\|^configuration:\|^    /\|^checks:\|^$'
grep -q " 0 errors, 0 warnings" "$WORK/rpmlint.out"; result $? "rpmlint: 0 errors, 0 warnings"

step "roots"
timeout 900 "$HERE/prepare-root.sh" || { echo "package-test: cannot prepare the roots"; exit 1; }

if [ "${SKIP_PIUPARTS:-0}" = 1 ]; then
  echo "PENDING - piuparts skipped (SKIP_PIUPARTS=1)"
else
  step "piuparts"
  timeout 900 piuparts --basetgz="$CACHE/minbase.tgz" --mirror="${MIRROR:-http://deb.debian.org/debian} main" \
    -d bookworm --warn-on-leftovers-after-purge "$deb" > "$WORK/piuparts.log" 2>&1
  r=$?; [ $r = 0 ] || tail -40 "$WORK/piuparts.log"
  result $r "piuparts (install, remove, purge; nothing left over)"
fi

step "boot"
ROOT=$WORK/root
mkdir -p "$ROOT" "$WORK/upper" "$WORK/ovl" "$CACHE/apt-archives/partial"
mount -t overlay overlay -o "lowerdir=$CACHE/systemd:$CACHE/minbase,upperdir=$WORK/upper,workdir=$WORK/ovl" "$ROOT" || exit 1
mkdir -p "$ROOT/root/pkgs/upgrade"
cp "$deb" "$rpmf" "$HERE/in-container.sh" "$ROOT/root/pkgs/"
# The next version for the upgrade test: same files, a changed default config, version +t1.
dpkg-deb -R "$deb" "$WORK/next" && echo "# upgraded" >> "$WORK/next/etc/corral/corral.toml" &&
  sed -i 's/^Version: \(.*\)$/Version: \1+t1/' "$WORK/next/DEBIAN/control" &&
  (cd "$WORK/next" && find etc usr -type f ! -path 'etc/*' -exec md5sum {} + > DEBIAN/md5sums) &&
  dpkg-deb -b --root-owner-group "$WORK/next" "$ROOT/root/pkgs/upgrade/" >/dev/null || { echo "cannot build the upgrade package"; exit 1; }
# Dependencies are fetched on the host network (cached across runs); the container has none.
mount --bind "$CACHE/apt-archives" "$ROOT/var/cache/apt/archives"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
timeout 300 chroot "$ROOT" sh -c 'DEBIAN_FRONTEND=noninteractive apt-get install -y -q --download-only --no-install-recommends /root/pkgs/corral_*.deb' \
  > "$WORK/download.log" 2>&1 || { tail "$WORK/download.log"; echo "cannot fetch the dependencies"; exit 1; }
umount "$ROOT/var/cache/apt/archives"
systemd-nspawn -q -D "$ROOT" -b --register=no --keep-unit --private-network -M corral-test \
  --bind="$CACHE/apt-archives:/var/cache/apt/archives" > "$WORK/console.log" 2>&1 &
NSPAWN_PID=$!
pid1=
for i in $(seq 1 100); do
  pid1=$(pgrep -P "$NSPAWN_PID" | head -1)
  [ -n "$pid1" ] && nsenter -t "$pid1" -a env -i PATH=/usr/bin:/bin timeout 1 systemctl is-system-running --wait >/dev/null 2>&1 && break
  sleep 0.2
done
state=$(nsenter -t "$pid1" -a env -i PATH=/usr/bin:/bin systemctl is-system-running 2>&1)
echo "        container: $state after $(( $(date +%s) - start ))s"
in_ct() { timeout 300 nsenter -t "$pid1" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root DEBIAN_FRONTEND=noninteractive "$@"; }

step "deb in the container"
in_ct sh /root/pkgs/in-container.sh deb /root/pkgs; r=$?
failures=$((failures + r))
step "rpm in the container"
in_ct sh /root/pkgs/in-container.sh rpm /root/pkgs; r=$?
failures=$((failures + r))

step "done"
echo "package-test: $failures failure(s) in $(( $(date +%s) - start ))s"
[ "$failures" = 0 ]
