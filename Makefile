# Thin wrapper around CMake: deps, configure, build, run, test, bench, fuzz.
BUILD    ?= build
TYPE     ?= RelWithDebInfo
SANITIZE ?=
JOBS     ?= $(shell nproc)
CMAKE_FLAGS ?=
BENCH_QUICK ?= 0

comma := ,
ifneq ($(SANITIZE),)
  BUILD := build-$(subst $(comma),-,$(SANITIZE))
endif

.PHONY: all deps configure build run test test-unit test-uploads test-idle-memory test-asan bench bench-side bench-all bench-ab bench-transitions bench-instr bench-profile fuzz soak soak-reload clean package package-test

all: build

deps:
	@packaging/install-deps.sh test

# A configure that failed half-way leaves a cache but no Makefile: key on the Makefile.
# Warnings are errors here (CI runs `make test`); a plain cmake build leaves them warnings.
$(BUILD)/Makefile:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(TYPE) -DCORRAL_SANITIZE=$(SANITIZE) -DCORRAL_WERROR=ON $(CMAKE_FLAGS)

configure: deps $(BUILD)/Makefile

build: configure
	cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/bin/corral-supervisor -c conf/demo.toml

test: build
	cd $(BUILD) && ctest -j $(JOBS) --output-on-failure --timeout 300

test-unit: build
	cd $(BUILD) && ctest -j $(JOBS) --output-on-failure -L unit

# The full upload memory test: 100 concurrent 50 MiB uploads through corral in a 256 MiB
# memory cgroup (make test runs 25 of them).
test-uploads: build
	CORRAL_UPLOAD_CLIENTS=100 $(BUILD)/bin/itest_75_upload_memory --gtest_color=no

# Proxy RSS per idle connection with 10,000 TLS and 10,000 plaintext connections (make test
# runs 2000 of each); prints the figures.
test-idle-memory: build
	CORRAL_IDLE_CONNS=10000 $(BUILD)/bin/itest_48_idle_memory --gtest_color=no

test-asan:
	$(MAKE) test SANITIZE=address,undefined

# make bench: scenarios 1-7 against corral, nginx, HAProxy, nghttpx, h2o and the app, then the
# WSGI run against Gunicorn (about 12 min: tests/bench/README.md, "Wall time of a default run");
# BENCH_QUICK=1 make bench: a smoke run. Results and the wall time of every part in
# $(BUILD)/bench/summary.md. make bench-side: the other side runs (legacy CGI/FastCGI, admin
# listener, WebSocket, compression, static files, and WSGI's three worker classes), each on its
# own; make bench-all: both.
BENCH_SIDES := legacy admin websocket compress static
bench: build
	@packaging/install-deps.sh bench
	BENCH_QUICK=$(BENCH_QUICK) tests/bench/run.sh $(BUILD)

bench-side: build
	@packaging/install-deps.sh bench
	@failed=""; for side in wsgi $(BENCH_SIDES); do \
	  BENCH_QUICK=$(BENCH_QUICK) tests/bench/$$side.sh $(BUILD) || failed="$$failed $$side"; \
	done; [ -z "$$failed" ] || { echo "bench-side: failed:$$failed" >&2; exit 1; }

bench-all: build
	@packaging/install-deps.sh bench
	BENCH_QUICK=$(BENCH_QUICK) SIDES="wsgi $(BENCH_SIDES)" WSGI_CLASSES="sync gthread gevent" tests/bench/run.sh $(BUILD)

# make bench-ab AB_A=old/corral-proxy AB_B=new/corral-proxy: two proxy binaries side by side under
# the h1, h2/TLS and new-TLS-connection loads, interleaved (tests/bench/ab.sh; AB_THREADS_A/_B
# compare proxy thread counts). Both default to this build's proxy.
AB_A ?= $(BUILD)/bin/corral-proxy
AB_B ?= $(BUILD)/bin/corral-proxy
bench-ab: build
	@packaging/install-deps.sh bench
	tests/bench/ab.sh $(AB_A) $(AB_B) $(BUILD)

# make bench-transitions: failed requests and worst latency at 100 requests/s across a reload,
# corralctl upgrade, corralctl restart-proxy and a restart, for an app that boots in 2 s
# (tests/bench/transitions.sh): $(BUILD)/bench/transitions.md.
bench-transitions: build
	@packaging/install-deps.sh bench
	tests/bench/transitions.sh $(BUILD)

# make bench-instr: user-space instructions (callgrind) and system calls (strace) per request of
# corral-proxy, HAProxy and nginx under the h1, h2/TLS and new-TLS-connection loads: counted, not
# timed, so it holds on a busy machine (tests/bench/instructions.sh): $(BUILD)/bench/instructions.md.
bench-instr: build
	@packaging/install-deps.sh bench
	tests/bench/instructions.sh $(BUILD)

# make bench-profile: flame graphs (perf, cpu-clock) of corral-proxy under the h1 keep-alive, the
# h2/TLS and the new-TLS-connection loads of make bench, with a text summary of each:
# $(BUILD)/bench/profiles/{h1,h2tls,handshake}-COMMIT.{svg,summary.txt}.
bench-profile: build
	@packaging/install-deps.sh bench
	BENCH_QUICK=$(BENCH_QUICK) tests/bench/profile.sh $(BUILD)

# make fuzz: every libFuzzer target of tests/fuzz (HTTP/1.1, HTTP/2 front end, FastCGI, CGI
# head, config loader, control messages) built with clang-14 under ASan+UBSan in build-fuzz,
# each run for FUZZ_SECONDS (default 100: about 10 min in all); FUZZ_TARGETS="fuzz_h2 ..."
# picks some; FUZZ_MERGE=1 merges what the runs found into tests/fuzz/corpus. See
# tests/fuzz/README.md.
FUZZ_TARGETS_ALL = fuzz_http1 fuzz_h2 fuzz_fastcgi fuzz_cgi_head fuzz_config fuzz_control fuzz_proxy_protocol
fuzz:
	@packaging/install-deps.sh fuzz
	cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang-14 \
	  -DCMAKE_CXX_COMPILER=clang++-14 -DCORRAL_FUZZ=ON $(CMAKE_FLAGS)
	cmake --build build-fuzz -j $(JOBS) --target $(or $(FUZZ_TARGETS),$(FUZZ_TARGETS_ALL))
	FUZZ_TARGETS="$(FUZZ_TARGETS)" FUZZ_SECONDS="$(FUZZ_SECONDS)" FUZZ_MERGE="$(FUZZ_MERGE)" tests/fuzz/run.sh build-fuzz

# make soak: mixed HTTP/1.1 and HTTP/2 load (keep-alive and fresh connections, TLS, uploads,
# slow readers, hostile clients) against an app of every kind for SOAK_MINUTES, while a chaos
# loop reloads every 30 s, SIGKILLs workers and the proxy and rescales an app; fails on a
# failed request no death record accounts for, an answer from the wrong app or generation, or
# a daemon whose fds, threads or RSS grew (tests/soak/README.md). SOAK_SEED=N repeats a run.
# make soak-reload: the reload property test (tests/integration/63_reload_property_test.cc)
# over a long random sequence: SOAK_STEPS reloads under load, each checked;
# CORRAL_RELOAD_SEED=N repeats a sequence.
SOAK_MINUTES ?= 10
SOAK_STEPS ?= 300
soak: build
	SOAK_MINUTES=$(SOAK_MINUTES) /usr/bin/python3 -B tests/soak/soak.py --build $(BUILD)

soak-reload: build
	CORRAL_RELOAD_STEPS=$(SOAK_STEPS) $(BUILD)/bin/itest_63_reload_property --gtest_color=no

# .deb and .rpm in $(PKG_BUILD)/packages: a Release build with Debian's hardening flags, no tests.
PKG_BUILD ?= build-package
package:
	@packaging/install-deps.sh package
	packaging/build-packages.sh $(PKG_BUILD)

# Root: lintian, rpmlint, piuparts, then boots a bookworm container under systemd-nspawn and
# installs, reloads, kills, upgrades, removes and purges both packages (tests/package/README.md).
package-test: package
	tests/package/run.sh $(PKG_BUILD)/packages

clean:
	rm -rf build build-*
