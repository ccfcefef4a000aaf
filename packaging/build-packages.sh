#!/bin/sh
# Builds corral_<version>_<arch>.deb and corral-<version>-1.<arch>.rpm into BUILD/packages.
# Usage: packaging/build-packages.sh [BUILD]   (default build-package)
# Compiler and linker flags are Debian's hardening set (dpkg-buildflags with hardening=+all):
# fortify, stack protector, PIE, full RELRO, bindnow, CET. Warnings are not errors here, as in
# any distribution build: GCC 12 at -O2 with fortify reports false -Wrestrict positives
# (GCC bug 105651) that the development builds (-Werror) do not see.
set -eu
BUILD=${1:-build-package}
SRC=$(cd "$(dirname "$0")/.." && pwd)
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
CXXFLAGS="$(dpkg-buildflags --get CPPFLAGS) $(dpkg-buildflags --get CXXFLAGS)"
CFLAGS="$(dpkg-buildflags --get CPPFLAGS) $(dpkg-buildflags --get CFLAGS)"
LDFLAGS="$(dpkg-buildflags --get LDFLAGS)"
cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr -DCORRAL_TESTS=OFF -DCORRAL_WERROR=OFF \
  "-DCMAKE_CXX_FLAGS=$CXXFLAGS" "-DCMAKE_C_FLAGS=$CFLAGS" \
  "-DCMAKE_EXE_LINKER_FLAGS=$LDFLAGS" >/dev/null
cmake --build "$BUILD" -j "${JOBS:-$(nproc)}"
rm -rf "$BUILD/packages"
(cd "$BUILD" && cpack -G "DEB;RPM" >cpack.log 2>&1) || { cat "$BUILD/cpack.log"; exit 1; }
ls -l "$BUILD"/packages/*.deb "$BUILD"/packages/*.rpm
