# Front door: `make run` and `make test` on a fresh Debian 12 machine.

BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# ccache (CMakeLists.txt) keys its cache on paths relative to the checkout, so that a fresh clone
# of the same sources, as CI makes, finds what an earlier build compiled.
export CCACHE_BASEDIR ?= $(CURDIR)
export CCACHE_NOHASHDIR ?= true

# Debian 12 packages the build and the tests need.
DEB_PACKAGES := cmake g++ make pkg-config ccache \
  libboost1.81-dev libssl-dev libsodium-dev libsqlite3-dev libspdlog-dev nlohmann-json3-dev \
  libpugixml-dev libcli11-dev libisal-dev libgtest-dev libgmock-dev libbenchmark-dev \
  python3 curl rclone s3cmd clang libclang-rt-14-dev clang-format clang-tidy openssl systemd python3-cryptography
# Ceph's RADOS Gateway and the daemons behind it: an upstream the gateway-mode tests start
# (tests/integration/upstreams.py). Without recommends, which would add ceph-mds and a time daemon.
CEPH_PACKAGES := ceph-mon ceph-mgr ceph-osd radosgw

.PHONY: all deps test-deps build run test test-unit test-integration format format-check tidy asan tsan fuzz bench bench-full bench-gateway clean

all: build

# $(call install_missing,<packages>,<apt-get install options>): installs those not installed yet.
define install_missing
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing missing packages:" $$missing; \
	  $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y $(2) $$missing; \
	fi
endef

deps:
	$(call install_missing,$(DEB_PACKAGES))
	@# The integration tests drive the daemon with boto3 and the aws CLI.
	@python3 -c 'import boto3' 2>/dev/null || { $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y python3-boto3; }
	@command -v aws >/dev/null || { $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y awscli; }

# What only the tests need, and `make run` does not: Ceph is ~280 MB installed.
test-deps: deps
	$(call install_missing,$(CEPH_PACKAGES),--no-install-recommends)

build: deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS)
	cmake --build $(BUILD_DIR) -j$(JOBS)

run: build
	$(BUILD_DIR)/coffre serve

# CI's entry point: formatting and clang-tidy, the suite, then (unless SUITE_ONLY is set, as the
# sanitizer builds set it) the whole suite again under ASan+UBSan and every fuzz target for
# CI_FUZZ_SECONDS (docs/RELIABILITY.md).
CI_FUZZ_SECONDS ?= 10
test: build test-deps
ifndef SUITE_ONLY
	$(MAKE) format-check
	$(MAKE) tidy
endif
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j$(JOBS)
ifndef SUITE_ONLY
	$(MAKE) asan
	$(MAKE) fuzz FUZZ_SECONDS=$(CI_FUZZ_SECONDS)
endif

test-unit: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j$(JOBS) -L unit

test-integration: build test-deps
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j$(JOBS) -L integration

# The tree is formatted by .clang-format; `make test` fails on any difference, `make format` fixes it.
FORMAT_FILES = $(shell git ls-files '*.cc' '*.h')
format: deps
	clang-format -i $(FORMAT_FILES)
format-check: deps
	clang-format --dry-run --Werror $(FORMAT_FILES)

# clang-tidy runs the checks of .clang-tidy over src/ with the build's compile_commands.json (CMake
# writes it when it configures); any finding fails. Headers under include/coffre and src are
# checked through the sources that include them. About 4.5 CPU-minutes: 2-3 minutes on two cores.
tidy: deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS)
	run-clang-tidy -quiet -p $(BUILD_DIR) -j$(JOBS) "$(CURDIR)/src/"

# Sanitizer builds run the whole suite (unit and integration). A report fails a test only through
# its process's exit code, and the Python tests SIGKILL many daemons, run CLIs with check=False and
# drop their stderr with their temp dirs; so every instrumented process (unit tests, gtest
# discovery, daemons, CLIs) writes its reports to <build dir>/sanitizer-reports/<tool>.<pid>
# (emptied first), and the run fails if ctest failed or any report exists, printing each one.
# Options already in the caller's *SAN_OPTIONS are kept; log_path is appended so it wins.
asan: deps
	$(call sanitized_suite,build-asan,address)
tsan: deps
	$(call sanitized_suite,build-tsan,thread)

# $(call sanitized_suite,<build dir>,<COFFRE_SANITIZE value>)
define sanitized_suite
	rm -rf $(1)/sanitizer-reports && mkdir -p $(1)/sanitizer-reports
	dir=$(CURDIR)/$(1)/sanitizer-reports; \
	ASAN_OPTIONS="$${ASAN_OPTIONS:+$$ASAN_OPTIONS:}log_path=$$dir/asan" \
	UBSAN_OPTIONS="$${UBSAN_OPTIONS:+$$UBSAN_OPTIONS:}log_path=$$dir/ubsan:print_stacktrace=1" \
	TSAN_OPTIONS="$${TSAN_OPTIONS:+$$TSAN_OPTIONS:}log_path=$$dir/tsan" \
	  $(MAKE) test SUITE_ONLY=1 BUILD_DIR=$(1) BUILD_TYPE=Debug CMAKE_ARGS=-DCOFFRE_SANITIZE=$(2); \
	status=$$?; \
	reports=$$(find $$dir -type f | sort); \
	for f in $$reports; do echo "===== sanitizer report $$f"; cat "$$f"; done; \
	if [ -n "$$reports" ]; then echo "FAILED: $$(echo $$reports | wc -w) sanitizer report(s) in $$dir" >&2; exit 1; fi; \
	exit $$status
endef

# libFuzzer targets (tests/fuzz), built with clang under ASan+UBSan in their own directory: each
# replays its committed seeds, then fuzzes for FUZZ_SECONDS; a crash fails the run and leaves the
# input in $(FUZZ_DIR)/tests/fuzz/<target>-crash-*.
FUZZ_DIR ?= build-fuzz
FUZZ_SECONDS ?= 25
fuzz: deps
	CXX=clang++ cmake -S . -B $(FUZZ_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOFFRE_FUZZ=ON \
	  -DCOFFRE_SANITIZE=address -DCOFFRE_FUZZ_SECONDS=$(FUZZ_SECONDS)
	cmake --build $(FUZZ_DIR) -j$(JOBS) --target fuzz_targets
	ctest --test-dir $(FUZZ_DIR) --output-on-failure -j$(JOBS) -L fuzz

# Benchmarks (docs/PERFORMANCE.md): a Release build in its own directory, then bench/run_bench.py
# runs the daemon and nginx side by side and rewrites the generated tables of docs/PERFORMANCE.md.
# `make bench` is the quick mode (a few minutes); `make bench-full` every size x concurrency.
BENCH_DIR ?= build-bench
BENCH_PACKAGES := nginx
BENCH_CMAKE_ARGS ?=
bench: deps
	@dpkg-query -W -f='$${Status}\n' $(BENCH_PACKAGES) 2>/dev/null | grep -q 'install ok installed' || \
	  { $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y $(BENCH_PACKAGES); }
	cmake -S . -B $(BENCH_DIR) -DCMAKE_BUILD_TYPE=Release $(BENCH_CMAKE_ARGS)
	cmake --build $(BENCH_DIR) -j$(JOBS) --target coffre coffre_load coffre_bench
	python3 bench/run_bench.py --build-dir $(BENCH_DIR) $(BENCH_ARGS)
bench-full:
	$(MAKE) bench BENCH_ARGS="--full $(BENCH_ARGS)"
# Gateway mode beside the upstream it fronts (a throw-away Ceph RGW), same client, same run.
bench-gateway: test-deps
	cmake -S . -B $(BENCH_DIR) -DCMAKE_BUILD_TYPE=Release $(BENCH_CMAKE_ARGS)
	cmake --build $(BENCH_DIR) -j$(JOBS) --target coffre coffre_load
	python3 bench/gateway_bench.py --build-dir $(BENCH_DIR) $(BENCH_ARGS)

clean:
	rm -rf build build-asan build-tsan build-fuzz

# Packaging (docs/OPERATIONS.md section 1). `make install` builds the binary and installs it with
# the unit, the example configuration, OPERATIONS.md and the man page under PREFIX (staged under
# DESTDIR when set): `sudo make install PREFIX=/usr`, or `make install DESTDIR=/tmp/stage`.
# `make deb` builds the binary in BUILD_DIR and packs a Debian package with CPack into DEB_DIR.
PREFIX ?= /usr/local
DEB_DIR ?= $(BUILD_DIR)/packages
.PHONY: install deb
install: deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS)
	cmake --build $(BUILD_DIR) -j$(JOBS) --target coffre
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD_DIR) --prefix "$(PREFIX)" --component coffre --strip

deb: deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS)
	cmake --build $(BUILD_DIR) -j$(JOBS) --target coffre
	cd $(BUILD_DIR) && cpack -G DEB -B "$(abspath $(DEB_DIR))"
	@ls -1 "$(abspath $(DEB_DIR))"/coffre_*.deb
