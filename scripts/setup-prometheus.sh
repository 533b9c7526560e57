#!/usr/bin/env bash
# setup-prometheus.sh — make Debian's `prometheus` (the server and promtool)
# available for tests/prometheus.rs. Idempotent: nothing happens when both
# programs are on PATH. The tests run their own server process on a free
# loopback port with a temporary storage folder; the packaged service is
# not used (and, without systemd, not started).
set -euo pipefail

ME=setup-prometheus
log() { printf '[%s] %s\n' "$ME" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "not root and no sudo"
    SUDO=(sudo)
fi

log "apt-get install -y prometheus"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get -o DPkg::Lock::Timeout=600 update -q
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends prometheus

command -v prometheus >/dev/null 2>&1 || die "prometheus is still not on PATH"
command -v promtool >/dev/null 2>&1 || die "promtool is still not on PATH"
log "prometheus $(prometheus --version 2>&1 | head -1)"
