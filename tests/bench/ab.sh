#!/usr/bin/env bash
# make bench-ab: two corral-proxy binaries side by side under the same loads, interleaved, for a
# change too small for make bench's spread: A and B are two corral instances alike but for
# CORRAL_PROXY_BIN (each proxy pinned to CPU 0, load and workers on the others). Loads: h1 (wrk
# keep-alive, 100 B), h2tls (h2load -c32 -m8 over TLS 1.3, 100 B), ec (new TLS connections, full
# ECDSA handshakes, one request each) and resume (the same, resumed). Prints proxy CPU µs per
# request (per connection for ec and resume) of A and B, medians (min–max) of AB_RUNS runs, and
# B/A.
#
# AB_THREADS_A / AB_THREADS_B (1) set `[proxy] threads` of each; a proxy of more than one
# thread is not pinned (every CPU), so the same binary twice with 1 and 2 threads is the
# threads = "auto" comparison (req/s then matters as much as CPU per request: both printed).
#
# usage: tests/bench/ab.sh BIN_A BIN_B [BUILD_DIR]
# env:   AB_RUNS (5)  SECONDS_PER_RUN (4)  AB_LOADS ("h1 h2tls ec resume")  WORKERS (4)
#        CONCURRENCY (8)  AB_THREADS_A (1)  AB_THREADS_B (1)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin_a=$(readlink -f "$1") bin_b=$(readlink -f "$2")
build=${3:-build}
bin=$(cd "$build/bin" && pwd)
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
runs=${AB_RUNS:-5}
dur=${SECONDS_PER_RUN:-4}
loads=${AB_LOADS:-h1 h2tls ec resume}
workers=${WORKERS:-4}
concurrency=${CONCURRENCY:-8}

need_tools "bench ab" wrk h2load openssl taskset python3
bench_begin "bench ab" ab-raw crl-ab
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost -keyout "$tmp/key.pem" -out "$tmp/cert.pem" > "$raw/openssl.log" 2>&1

declare -A port tls_port proxy
for v in A B; do
  mkdir -p "$tmp/$v"
  corral_pool_toml "$tmp/$v" "" "$tmp/cert.pem" "$tmp/key.pem" > "$tmp/$v/corral.toml"
  threads_var=AB_THREADS_$v
  threads=${!threads_var:-1}
  sed -i "s/^threads = 1\$/threads = $threads/" "$tmp/$v/corral.toml"
  # Named corral-proxy, as the supervisor's own would be (the name is how it is found).
  mkdir -p "$tmp/$v/bin"
  cp "$([ "$v" = A ] && echo "$bin_a" || echo "$bin_b")" "$tmp/$v/bin/corral-proxy"
  export CORRAL_PROXY_BIN=$tmp/$v/bin/corral-proxy
  corral_start "corral-$v" "$tmp/$v"
  port[$v]=$corral_port proxy[$v]=$corral_proxy
  [ "$threads" = 1 ] || taskset -apc "0-$((ncpu - 1))" "$corral_proxy" > /dev/null
  tls_port[$v]=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["listeners"][1]["bound"].rsplit(":", 1)[-1])' \
    "$raw/corral-$v.status.json")
  wait_http "${port[$v]}" "/big?bytes=100" || { echo "corral $v does not answer" >&2; exit 1; }
done
unset CORRAL_PROXY_BIN

one() {  # load variant run seconds -> prints "count" (requests or connections)
  local f=$raw/$1.$2.$3
  case $1 in
    h1) timeout $(($4 + 20)) taskset -c "$load_cpus" wrk -t1 -c32 -d"$4s" -s "$here/stats.lua" -H "Host: bench" \
          "http://127.0.0.1:${port[$2]}/big?bytes=100" > "$f" 2>&1 || true
        awk "$bench_awk"' /^BENCH / {bench_fields(); print v["requests"]}' "$f" ;;
    h2tls) timeout $(($4 + 30)) taskset -c "$load_cpus" h2load -t1 -c32 -m8 -D "$4" \
          "https://127.0.0.1:${tls_port[$2]}/big?bytes=100" > "$f" 2>&1 || true
        awk '/^requests:/ {gsub(",", ""); print $8}' "$f" ;;
    ec|resume) timeout $(($4 + 30)) taskset -c "$load_cpus" python3 "$here/tls_conns.py" --port "${tls_port[$2]}" \
          --procs 4 --seconds "$4" $([ "$1" = resume ] && echo --resume) > "$f" 2>&1 || true
        awk "$bench_awk"' /^BENCH / {bench_fields(); print v["conns"]}' "$f" ;;
  esac
}
for load in $loads; do
  for v in A B; do one "$load" "$v" 0 1 > /dev/null; done  # warm-up
  for i in $(seq 1 "$runs"); do
    for v in $([ $((i % 2)) = 1 ] && echo A B || echo B A); do
      t0=$(cpu_ticks "${proxy[$v]}")
      n=$(one "$load" "$v" "$i" "$dur")
      t1=$(cpu_ticks "${proxy[$v]}")
      echo $((${n:-0} / dur)) >> "$raw/$load.$v.rate"
      awk -v t=$((t1 - t0)) -v n="${n:-0}" -v clk="$clk" 'BEGIN {if (n > 0) printf "%.1f\n", t * 1e6 / clk / n}' \
        >> "$raw/$load.$v.cpu"
      log "$load run $i/$runs $v: $n, $(tail -1 "$raw/$load.$v.cpu") µs"
    done
  done
done
{
  echo "# corral-proxy A against B — $(bench_env)"
  echo
  echo "A: $bin_a, [proxy] threads = ${AB_THREADS_A:-1}"
  echo "B: $bin_b, [proxy] threads = ${AB_THREADS_B:-1}"
  echo
  echo "Proxy CPU µs per request (ec, resume: per new TLS connection), medians (min–max) of $runs interleaved runs of ${dur}s."
  echo
  echo "| load | A: CPU µs | B: CPU µs | B/A | A: per second | B: per second |"
  echo "|---|---|---|---|---|---|"
  for load in $loads; do
    a=$(median < "$raw/$load.A.cpu") b=$(median < "$raw/$load.B.cpu")
    echo "| $load | $(median_range < "$raw/$load.A.cpu") | $(median_range < "$raw/$load.B.cpu") |" \
      "$(awk -v a="$a" -v b="$b" 'BEGIN {if (a > 0) printf "%.3f", b / a; else print "-"}') |" \
      "$(median_range < "$raw/$load.A.rate") | $(median_range < "$raw/$load.B.rate") |"
  done
} > "$out/ab.md"
cat "$out/ab.md"
