# Front door: `make run` and `make test` on a fresh Debian 12 machine.

BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Debian 12 packages the build and the tests need.
DEB_PACKAGES := cmake g++ make pkg-config \
  libboost1.81-dev libssl-dev libsodium-dev libsqlite3-dev libspdlog-dev nlohmann-json3-dev \
  libpugixml-dev libcli11-dev libisal-dev libgtest-dev libgmock-dev libbenchmark-dev \
  python3 curl rclone s3cmd

.PHONY: all deps build run test test-unit test-integration asan tsan clean

all: build

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing missing packages:" $$missing; \
	  $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y $$missing; \
	fi
	@# The integration tests drive the daemon with boto3 and the aws CLI.
	@python3 -c 'import boto3' 2>/dev/null || { $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y python3-boto3; }
	@command -v aws >/dev/null || { $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y awscli; }

build: deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS)
	cmake --build $(BUILD_DIR) -j$(JOBS)

run: build
	$(BUILD_DIR)/coffre serve

test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j$(JOBS)

test-unit: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j$(JOBS) -L unit

test-integration: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -L integration

# Sanitizer builds run the whole suite (unit and integration).
asan: deps
	$(MAKE) test BUILD_DIR=build-asan BUILD_TYPE=Debug CMAKE_ARGS=-DCOFFRE_SANITIZE=address
tsan: deps
	$(MAKE) test BUILD_DIR=build-tsan BUILD_TYPE=Debug CMAKE_ARGS=-DCOFFRE_SANITIZE=thread

clean:
	rm -rf build build-asan build-tsan
