# forge-shim: `make run` starts the shim in front of the local dockerd with
# the embedded default config; `make test` runs every test layer.

CARGO ?= cargo
SOCKET ?= /run/forge-shim/docker.sock

.PHONY: build release run check setup test test-unit test-real lint fmt bench fuzz clean

build:
	$(CARGO) build

release:
	$(CARGO) build --release

run: release
	bash scripts/setup-docker.sh
	@echo "forge-shim: export DOCKER_HOST=unix://$(SOCKET)"
	./target/release/forge-shim serve --listen $(SOCKET)

check: build
	./target/debug/forge-shim check

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# Pure and in-process tests: no dockerd needed.
test-unit:
	$(CARGO) test --lib --bins

# What the real tests need, installed and started when missing (idempotent):
# dockerd, the compose plugin, the local test images, Prometheus and promtool,
# headless Chromium and chromedriver (tests/dashboard.rs).
setup:
	bash scripts/setup-docker.sh
	bash scripts/test-images.sh
	bash scripts/service-images.sh
	bash scripts/setup-prometheus.sh
	bash scripts/setup-chromium.sh

# The real binary in front of the real dockerd, driven by the docker CLI,
# docker compose and bollard. Fails (never skips) when dockerd is not there.
test-real: setup
	$(CARGO) test --test '*' -- --test-threads=4

test: lint test-unit test-real

# The property tests (src/fuzz.rs) for longer than `make test` runs them.
fuzz:
	PROPTEST_CASES=$${PROPTEST_CASES:-200000} $(CARGO) test --release --lib fuzz

bench: release
	bash scripts/bench-proxy.sh

clean:
	$(CARGO) clean
