#!/bin/sh
# Builds (once) and caches the roots the package tests boot, under $CACHE
# (default /var/cache/corral-package-test):
#   minbase/          debootstrap --variant=minbase bookworm            (about 30-60 s, once)
#   minbase.tgz       the same as a tarball, for piuparts --basetgz
#   systemd/          an overlay upper layer on minbase: systemd, systemd-sysv, curl, rpm
#                     (no procps: ExecReload must not need kill(1))
# Each layer is built in a temporary directory and renamed when complete, so an interrupted
# run never leaves a half-built cache. Needs root and network (first run only).
set -eu
CACHE=${CACHE:-/var/cache/corral-package-test}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
mkdir -p "$CACHE"
cd "$CACHE"

if [ ! -d minbase ]; then
  rm -rf minbase.tmp
  echo "prepare-root: debootstrap minbase bookworm (once)"
  debootstrap --variant=minbase bookworm minbase.tmp "$MIRROR" > debootstrap.log 2>&1 ||
    { tail -20 debootstrap.log; exit 1; }
  mv minbase.tmp minbase
fi
if [ ! -f minbase.tgz ]; then
  tar -C minbase -czf minbase.tgz.tmp . && mv minbase.tgz.tmp minbase.tgz
fi

if [ ! -d systemd ]; then
  echo "prepare-root: systemd layer (once)"
  rm -rf systemd.tmp systemd.work systemd.mnt
  mkdir -p systemd.tmp systemd.work systemd.mnt
  mount -t overlay overlay -o "lowerdir=$CACHE/minbase,upperdir=$CACHE/systemd.tmp,workdir=$CACHE/systemd.work" systemd.mnt
  trap 'umount -l "$CACHE/systemd.mnt/proc" 2>/dev/null || true; umount -l "$CACHE/systemd.mnt" 2>/dev/null || true' EXIT
  cp /etc/resolv.conf systemd.mnt/etc/resolv.conf
  mount -t proc proc systemd.mnt/proc
  chroot systemd.mnt sh -c 'export DEBIAN_FRONTEND=noninteractive;
    printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d &&
    apt-get update -qq && apt-get install -y -qq --no-install-recommends systemd systemd-sysv curl rpm ca-certificates &&
    rm -f /usr/sbin/policy-rc.d && apt-get clean &&
    echo corral-test > /etc/hostname && systemctl mask systemd-networkd-wait-online.service getty@tty1.service >/dev/null 2>&1; true' \
    > systemd-layer.log 2>&1 || { tail -20 systemd-layer.log; exit 1; }
  umount systemd.mnt/proc
  umount systemd.mnt
  trap - EXIT
  rm -rf systemd.work systemd.mnt
  mv systemd.tmp systemd
fi
echo "prepare-root: ready in $CACHE"
