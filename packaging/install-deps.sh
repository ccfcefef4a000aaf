#!/bin/sh
# Installs the Debian 12 packages corral needs to build and test, only when some are missing.
# Usage: packaging/install-deps.sh [build|test|bench|fuzz|package]   (each level includes the previous;
# package = build + what make package / make package-test need)
set -eu
level=${1:-test}
build_pkgs="g++ make cmake pkg-config libevent-dev libssl-dev libnghttp2-dev libtomlplusplus-dev
 libexpected-dev nlohmann-json3-dev libgtest-dev libgmock-dev libpython3.11-dev zlib1g-dev libbrotli-dev"
# test: php-cgi and perl run as CGI/FastCGI apps; libfcgi-dev builds the C FastCGI test app;
# prometheus (promtool and a real server) checks /metrics; chromium renders /status;
# python3-websockets (echo app and client) and python3-h2 (extended CONNECT) test WebSocket tunnels;
# brotli and python3-brotli decode what the proxy compresses; brotli and gzip make the precompressed
# siblings static routes serve; media-types has /etc/mime.types; the multi-host test makes network
# namespaces with iproute2 and balances two corral hosts with haproxy and with nginx's stream
# module (libnginx-mod-stream: nginx-light has it only as a module), and haproxy also sends PROXY
# protocol headers to corral in tests/integration/68_proxy_protocol_test.cc; python3-yaml parses
# the Kubernetes manifests in packaging/kubernetes
test_pkgs="curl wrk nghttp2-client procps brotli gzip media-types clang-14 libclang-rt-14-dev python3-flask python3-gevent python3-venv php-cgi perl libfcgi-dev openssl python3-hpack
 python3-websockets python3-h2
 prometheus chromium fonts-dejavu-core brotli python3-brotli
 iproute2 haproxy nginx-light libnginx-mod-stream python3-yaml"
# bench: the proxies corral is compared with (h2o is the HTTP/2 anchor; nginx and haproxy come
# with test), the tools the bench scripts drive, and linux-perf for the flame graphs of
# tests/bench/profile.sh
bench_pkgs="nghttp2-proxy h2o openssl python3 util-linux gunicorn fcgiwrap spawn-fcgi linux-perf valgrind strace"
# fuzz: clang-14 with libFuzzer and the sanitizer runtimes (libclang-rt-14-dev), and
# llvm-symbolizer (llvm-14) for readable crash stacks
fuzz_pkgs="clang-14 libclang-rt-14-dev llvm-14"
package_pkgs="dpkg-dev rpm lintian rpmlint piuparts debootstrap systemd systemd-container file"
pkgs=$build_pkgs
case "$level" in
  build) ;;
  test) pkgs="$pkgs $test_pkgs" ;;
  fuzz) pkgs="$pkgs $test_pkgs $fuzz_pkgs" ;;
  bench) pkgs="$pkgs $test_pkgs $bench_pkgs" ;;
  package) pkgs="$pkgs $package_pkgs" ;;
  *) echo "install-deps: unknown level '$level'" >&2; exit 2 ;;
esac
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing packages:$missing (run as root, or install them with apt-get)" >&2
  exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# Installing must not start system services (nginx, haproxy, nghttpx would grab ports 80/443 and
# keep running): a policy-rc.d that denies every start, removed afterwards if it was ours.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing
