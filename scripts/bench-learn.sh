#!/usr/bin/env bash
# bench-learn.sh — what fitted hardening's watching costs: a release shim
# (embedded config, auto_sleep off, hardening.learn_for 3s) while N learning
# containers (busybox `sleep`, labelled as the shim labels a learning create)
# start, are each looked at once, and then run idle for a minute.
#
# Reports the shim's CPU time (utime+stime from /proc/PID/stat) per look,
# and its CPU use while N containers run and nothing starts, as a share of
# one core; the baseline is the same shim before the containers exist,
# measured in the same run.
#
# Usage: scripts/bench-learn.sh [N]     (default 200)
set -euo pipefail

ME=bench-learn
log() { printf '[%s] %s\n' "$ME" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

N=${1:-200}
IMAGE=forge-test/busybox:latest
IDLE=60
cd "$(dirname "$0")/.."
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 || die "dockerd does not answer"
cargo build --release --quiet --bin forge-shim
shim_bin=target/release/forge-shim
work=$(mktemp -d /tmp/bench-learn.XXXXXX)
prefix="bench-learn-$$"
shim_pid=
cleanup() {
    [ -z "$shim_pid" ] || kill "$shim_pid" 2>/dev/null || true
    ids=$(docker ps -aq --filter "name=^/?$prefix-" 2>/dev/null || true)
    [ -z "$ids" ] || docker rm -f $ids >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat >"$work/shim.yml" <<YAML
listen: $work/docker.sock
state_dir: $work/state
auto_sleep: { enabled: false }
standards: { hardening: { learn_for: 3s } }
YAML
RUST_LOG=info "$shim_bin" serve --config "$work/shim.yml" >"$work/shim.log" 2>&1 &
shim_pid=$!
for _ in $(seq 1 200); do
    curl -fsS --unix-socket "$work/docker.sock" http://f/_forge/v1/health >/dev/null 2>&1 && break
    sleep 0.05
done
ticks() { awk '{print $14 + $15}' "/proc/$shim_pid/stat"; }
hz=$(getconf CLK_TCK)

t0=$(ticks); sleep "$IDLE"; t1=$(ticks)
base=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v s="$IDLE" 'BEGIN { printf "%.3f", (b - a) / hz / s * 100 }')

log "starting $N learning containers straight on dockerd"
before=$(ticks)
for i in $(seq 1 "$N"); do
    docker run -d --name "$prefix-$i" --label forge-shim.hardening=learning "$IMAGE" sleep 3600 >/dev/null
done
log "waiting for $N looks"
for _ in $(seq 1 600); do
    looks=$(grep -c "learned from a container" "$work/shim.log" || true)
    [ "$looks" -ge "$N" ] && break
    sleep 0.5
done
[ "$looks" -ge "$N" ] || die "only $looks of $N looks"
after=$(ticks)
per_look=$(awk -v a="$before" -v b="$after" -v hz="$hz" -v n="$N" 'BEGIN { printf "%.2f", (b - a) / hz / n * 1000 }')

t0=$(ticks); sleep "$IDLE"; t1=$(ticks)
idle=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v s="$IDLE" 'BEGIN { printf "%.3f", (b - a) / hz / s * 100 }')

echo "| | shim CPU |"
echo "|---|---:|"
echo "| idle, no containers (baseline, ${IDLE}s) | ${base}% of a core |"
echo "| per look at a learning container (events, inspect, changes, /proc) | ${per_look} ms |"
echo "| idle, $N learning-labelled containers running (${IDLE}s) | ${idle}% of a core |"
