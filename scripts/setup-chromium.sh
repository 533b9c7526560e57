#!/usr/bin/env bash
# setup-chromium.sh — make Debian's headless Chromium and its WebDriver
# (`chromium`, `chromedriver`) available for tests/dashboard.rs, which loads
# the dashboard page in it. Idempotent: nothing happens when both programs
# are on PATH. The tests start their own chromedriver on a free loopback
# port with a temporary profile; nothing here runs a browser.
set -euo pipefail

ME=setup-chromium
log() { printf '[%s] %s\n' "$ME" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "not root and no sudo"
    SUDO=(sudo)
fi

log "apt-get install -y chromium chromium-driver"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get -o DPkg::Lock::Timeout=600 update -q
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends \
    chromium chromium-driver fonts-dejavu-core

command -v chromium >/dev/null 2>&1 || die "chromium is still not on PATH"
command -v chromedriver >/dev/null 2>&1 || die "chromedriver is still not on PATH"
log "$(chromium --version 2>/dev/null | head -1)"
