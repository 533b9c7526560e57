#!/usr/bin/env bash
# bench-create.sh — what the standards cost on `docker create`: 200 creates
# (and removes) of forge-test/busybox straight to dockerd and through a
# release shim with the embedded standards (enforce), in one run.
#
# 1. examples/bench_create.rs: raw `POST /containers/create` with the docker
#    CLI's body on a keep-alive connection per side; only the create is
#    timed. p50/p90/p99/mean, the added median (target: <= 2 ms) and ratio.
# 2. The docker CLI end to end: `docker create` timed with `date +%s%N`
#    (process start, ping, create), `docker rm` untimed; a rough figure.
#
# The shim gets the embedded shim.yml with only `listen`, `state_dir` (both
# in a temporary folder) and `auto_sleep.enabled: false` changed.
#
# Usage: scripts/bench-create.sh [COUNT]     (default 200)
# Needs: a running dockerd (scripts/setup-docker.sh) and the local test images
# (scripts/test-images.sh). Uses only local Unix sockets.
set -euo pipefail

ME=bench-create
log() { printf '[%s] %s\n' "$ME" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

COUNT=${1:-200}
IMAGE=forge-test/busybox:latest
DIRECT_HOST=unix:///var/run/docker.sock

cd "$(dirname "$0")/.."

DOCKER_HOST=$DIRECT_HOST docker version --format '{{.Server.Version}}' >/dev/null 2>&1 \
    || die "dockerd does not answer; run scripts/setup-docker.sh"
DOCKER_HOST=$DIRECT_HOST docker image inspect "$IMAGE" >/dev/null 2>&1 \
    || die "$IMAGE is missing; run scripts/test-images.sh"

log "building the release shim and the bench (if needed)"
cargo build --release --quiet --bin forge-shim --example bench_create
target_dir=$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null \
    || echo target)
shim_bin="$target_dir/release/forge-shim"
bench_bin="$target_dir/release/examples/bench_create"
[ -x "$shim_bin" ] || die "$shim_bin was not built"
[ -x "$bench_bin" ] || die "$bench_bin was not built"

work=$(mktemp -d /tmp/bench-create.XXXXXX)
shim_pid=
prefix="bench-create-cli-$$"
cleanup() {
    if [ -n "$shim_pid" ] && kill -0 "$shim_pid" 2>/dev/null; then
        kill "$shim_pid" 2>/dev/null || true
        wait "$shim_pid" 2>/dev/null || true
    fi
    # Containers a cut-short CLI loop left behind.
    ids=$(DOCKER_HOST=$DIRECT_HOST docker ps -aq --filter "name=^/?$prefix-" 2>/dev/null || true)
    [ -z "$ids" ] || DOCKER_HOST=$DIRECT_HOST docker rm -f $ids >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The embedded config, with a temporary socket and state folder and no sleeping.
sed -e "s#^listen:.*#listen: $work/docker.sock#" \
    -e "s#^state_dir:.*#state_dir: $work/state#" \
    -e '/^auto_sleep:/,/^[^ #]/ s#^  enabled: true#  enabled: false#' \
    shim.yml >"$work/shim.yml"
"$shim_bin" check --config "$work/shim.yml" >"$work/effective.yml" \
    || die "the bench config does not validate"
grep -q '^  mode: enforce' "$work/effective.yml" || die "standards are not in enforce mode"
awk '/^auto_sleep:/{a=1} a&&/^  enabled:/{print; exit}' "$work/effective.yml" | grep -q false \
    || die "auto_sleep is still enabled"

log "starting the release shim on $work/docker.sock"
RUST_LOG=warn "$shim_bin" serve --config "$work/shim.yml" >"$work/shim.log" 2>&1 &
shim_pid=$!
for _ in $(seq 1 200); do
    [ -S "$work/docker.sock" ] && curl -fsS --unix-socket "$work/docker.sock" http://forge/_forge/v1/health >/dev/null 2>&1 && break
    kill -0 "$shim_pid" 2>/dev/null || { cat "$work/shim.log" >&2; die "the shim exited"; }
    sleep 0.05
done
[ -S "$work/docker.sock" ] || die "the shim did not start"
SHIM_HOST="unix://$work/docker.sock"

printf '\n== 1. raw API (examples/bench_create.rs), %s creates per side ==\n\n' "$COUNT"
"$bench_bin" --shim "$work/docker.sock" --count "$COUNT"

# Fitted hardening with a profile in use: the image is learned first
# (`forge-shim profile`), so every create reads its profile and gets the
# fitted rules. Busybox's `sh` exits at once, so a real service image.
PROFILED=forge-test/python-api:latest
if DOCKER_HOST=$DIRECT_HOST docker image inspect "$PROFILED" >/dev/null 2>&1; then
    printf '\n== 1b. raw API with a profile in use (%s), %s creates per side ==\n\n' "$PROFILED" "$COUNT"
    "$shim_bin" profile "$PROFILED" --seconds 3 --socket "$work/docker.sock" >"$work/profile.txt" \
        || { cat "$work/profile.txt" >&2; die "forge-shim profile failed"; }
    grep -q 'read_only_rootfs: apply' "$work/profile.txt" || { cat "$work/profile.txt" >&2; die "no ready profile"; }
    "$bench_bin" --shim "$work/docker.sock" --count "$COUNT" --image "$PROFILED"
else
    log "$PROFILED missing (scripts/service-images.sh): skipping the profiled run"
fi

printf '\n== 2. docker CLI end to end, %s creates per side ==\n\n' "$COUNT"
# The CLI through the shim prints the standards' warnings: they are on.
DOCKER_HOST=$SHIM_HOST docker create --name "$prefix-check" "$IMAGE" true >/dev/null 2>"$work/cli-stderr.txt"
DOCKER_HOST=$DIRECT_HOST docker rm -f "$prefix-check" >/dev/null
grep -q '^WARNING: forge-shim: ' "$work/cli-stderr.txt" \
    || { cat "$work/cli-stderr.txt" >&2; die "no forge-shim warnings from the CLI through the shim"; }
log "timing docker create (the CLI takes a while: ~$((COUNT * 4)) CLI runs)"
: >"$work/cli-direct.txt"
: >"$work/cli-shim.txt"
time_create() { # host, name, output file
    local start end
    start=$(date +%s%N)
    DOCKER_HOST=$1 docker create --name "$2" "$IMAGE" true >/dev/null 2>"$work/cli-stderr.txt" \
        || { cat "$work/cli-stderr.txt" >&2; die "docker create $2 failed"; }
    end=$(date +%s%N)
    echo $(( (end - start) / 1000 )) >>"$3"
    DOCKER_HOST=$DIRECT_HOST docker rm -f "$2" >/dev/null
}
for i in $(seq 1 "$COUNT"); do
    if [ $((i % 2)) -eq 0 ]; then
        time_create "$DIRECT_HOST" "$prefix-d-$i" "$work/cli-direct.txt"
        time_create "$SHIM_HOST" "$prefix-s-$i" "$work/cli-shim.txt"
    else
        time_create "$SHIM_HOST" "$prefix-s-$i" "$work/cli-shim.txt"
        time_create "$DIRECT_HOST" "$prefix-d-$i" "$work/cli-direct.txt"
    fi
done

# p50/p90/p99/mean of a file of microseconds, in ms.
stats() {
    sort -n "$1" | awk '
        { v[NR] = $1; sum += $1 }
        function rank(q,  r) { r = int(q * NR); if (r < q * NR) r++; if (r < 1) r = 1; return v[r] / 1000 }
        END { printf "%.2f %.2f %.2f %.2f\n", rank(0.50), rank(0.90), rank(0.99), sum / NR / 1000 }'
}
read -r d50 d90 d99 dmean < <(stats "$work/cli-direct.txt")
read -r s50 s90 s99 smean < <(stats "$work/cli-shim.txt")
echo "| docker create (CLI) | direct | shim | added | ratio |"
echo "|---|---:|---:|---:|---:|"
for row in "p50 $d50 $s50" "p90 $d90 $s90" "p99 $d99 $s99" "mean $dmean $smean"; do
    set -- $row
    awk -v l="$1" -v d="$2" -v s="$3" 'BEGIN { printf "| %s | %.2f | %.2f | %+.2f | %.2fx |\n", l, d, s, s - d, s / d }'
done
echo
awk -v d="$d50" -v s="$s50" 'BEGIN { printf "CLI added median per create: %.2f ms; ratio %.2fx (process start and ping included)\n", s - d, s / d }'

if grep -qi 'panicked' "$work/shim.log"; then
    cat "$work/shim.log" >&2
    die "the shim panicked"
fi
