#!/usr/bin/env bash
# bench-proxy.sh — measure what forge-shim costs: the same calls straight to
# dockerd and through a release shim (standards and sleeping off), in one run,
# each figure with its ratio, then a Markdown table for README's Performance
# section. See examples/bench_proxy.rs for what is measured.
#
# Usage: scripts/bench-proxy.sh [bench_proxy options...]
#   e.g. scripts/bench-proxy.sh --rounds 5      (default 3 rounds, median)
#        scripts/bench-proxy.sh --quick         (a fast smoke run)
#        scripts/bench-proxy.sh --only ping     (sections: ping, stream, memory)
# Needs: a running dockerd (scripts/setup-docker.sh) and the local test images
# (scripts/test-images.sh). Uses only local Unix sockets.
set -euo pipefail

ME=bench-proxy
log() { printf '[%s] %s\n' "$ME" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

cd "$(dirname "$0")/.."

docker version --format '{{.Server.Version}}' >/dev/null 2>&1 \
    || die "dockerd does not answer; run scripts/setup-docker.sh"
docker image inspect forge-test/busybox:latest >/dev/null 2>&1 \
    || die "forge-test/busybox is missing; run scripts/test-images.sh"

log "building the release shim and the bench"
cargo build --release --quiet --bin forge-shim --example bench_proxy
target_dir=$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null \
    || echo target)
shim_bin="$target_dir/release/forge-shim"
[ -x "$shim_bin" ] || die "$shim_bin was not built"

log "running (this takes a couple of minutes)"
exec cargo run --release --quiet --example bench_proxy -- --shim-bin "$shim_bin" "$@"
