#!/usr/bin/env bash
# bench-wake.sh — what sleep and wake cost and save, in one run, with a
# release shim in front of the local dockerd; each figure with its baseline,
# then a Markdown table for README's Performance section. See
# examples/bench_wake.rs for what is measured:
#   1. docker exec on a sleeping vs a running container (added p50/p99)
#   2. HTTP time to first byte, sleeping vs running (added p50/p99)
#   3. memory of a container holding 200 MiB, asleep with and without swap
#   4. 200 sleeping containers: shim CPU over 60 s and RSS
#   5. 1,000 sleep/wake cycles under concurrent exec and HTTP load: failures
#   6. wake from deep sleep vs plain docker start (ratio)
#
# Usage: scripts/bench-wake.sh [bench_wake options...]
#   e.g. scripts/bench-wake.sh --quick     (a fast smoke run)
#        scripts/bench-wake.sh --only many (sections: exec, http, memory, many, deep)
# Needs: root (cgroup files, a swap file), a running dockerd
# (scripts/setup-docker.sh) and the local test images (scripts/test-images.sh).
# Everything it creates is removed at the end, even when interrupted: the
# containers named fs-bench-wake-<pid>-* and its own swap file.
set -euo pipefail

ME=bench-wake
log() { printf '[%s] %s\n' "$ME" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

cd "$(dirname "$0")/.."

[ "$(id -u)" -eq 0 ] || die "run as root (cgroup files and a swap file)"
DOCKER_HOST=unix:///var/run/docker.sock docker version --format '{{.Server.Version}}' >/dev/null 2>&1 \
    || die "dockerd does not answer; run scripts/setup-docker.sh"
for image in forge-test/busybox:latest forge-test/httpd:latest; do
    DOCKER_HOST=unix:///var/run/docker.sock docker image inspect "$image" >/dev/null 2>&1 \
        || die "$image is missing; run scripts/test-images.sh"
done

# The bench's own swap file; switched off here too in case the bench is killed.
export FORGE_SWAPFILE=/var/tmp/forge-shim-bench-wake-$$.swap
bench_pid=
cleanup() {
    if [ -n "$bench_pid" ]; then
        DOCKER_HOST=unix:///var/run/docker.sock docker ps -aq --filter "name=fs-bench-wake-$bench_pid-" \
            | xargs -r env DOCKER_HOST=unix:///var/run/docker.sock docker rm -f >/dev/null 2>&1 || true
    fi
    bash scripts/with-swap.sh off >/dev/null 2>&1 || true
}
trap cleanup EXIT

log "building the release shim and the bench"
cargo build --release --quiet --bin forge-shim --example bench_wake
target_dir=$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null \
    || echo target)
shim_bin="$target_dir/release/forge-shim"
bench_bin="$target_dir/release/examples/bench_wake"
[ -x "$shim_bin" ] || die "$shim_bin was not built"
[ -x "$bench_bin" ] || die "$bench_bin was not built"

log "running (about 6 minutes)"
"$bench_bin" --shim-bin "$shim_bin" "$@" &
bench_pid=$!
wait "$bench_pid"
