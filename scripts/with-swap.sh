#!/usr/bin/env bash
# with-swap.sh — a temporary swap file for tests that push frozen containers'
# memory to swap.
#
# Usage: scripts/with-swap.sh on [SIZE]   (SIZE as for fallocate -l; default 1G)
#        scripts/with-swap.sh off
#        scripts/with-swap.sh status       (exit 0 when our swap file is active)
# Env:   FORGE_SWAPFILE (default /var/tmp/forge-shim-test.swap)
# Idempotent: `on` when already active and `off` when already gone do nothing.
set -euo pipefail

ME=with-swap
log() { printf '[%s] %s\n' "$ME" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

SWAPFILE=${FORGE_SWAPFILE:-/var/tmp/forge-shim-test.swap}
SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo)

is_active() { awk 'NR>1 {print $1}' /proc/swaps | grep -qxF "$SWAPFILE"; }

cmd=${1:-}
case "$cmd" in
on)
    size=${2:-1G}
    if is_active; then
        log "$SWAPFILE already active"
        exit 0
    fi
    # A leftover file from an interrupted run may be the wrong size or not
    # formatted: recreate it.
    "${SUDO[@]}" rm -f "$SWAPFILE"
    "${SUDO[@]}" mkdir -p "$(dirname "$SWAPFILE")"
    log "creating $SWAPFILE ($size)"
    if ! "${SUDO[@]}" fallocate -l "$size" "$SWAPFILE" 2>/dev/null; then
        # Some filesystems lack fallocate; swapon rejects sparse files, so write zeros.
        log "fallocate failed; falling back to dd"
        bytes=$(numfmt --from=iec "$size")
        "${SUDO[@]}" dd if=/dev/zero of="$SWAPFILE" bs=1M count=$(( (bytes + 1048575) / 1048576 )) status=none
    fi
    "${SUDO[@]}" chmod 600 "$SWAPFILE"
    "${SUDO[@]}" mkswap -q "$SWAPFILE" >/dev/null 2>&1 || "${SUDO[@]}" mkswap "$SWAPFILE" >/dev/null
    if ! "${SUDO[@]}" swapon "$SWAPFILE"; then
        "${SUDO[@]}" rm -f "$SWAPFILE"
        die "swapon $SWAPFILE failed"
    fi
    log "swap on: $(awk -v f="$SWAPFILE" '$1==f {print $1, $3 " KiB"}' /proc/swaps)"
    ;;
off)
    if is_active; then
        log "swapoff $SWAPFILE"
        "${SUDO[@]}" swapoff "$SWAPFILE"
    fi
    if [ -e "$SWAPFILE" ]; then
        "${SUDO[@]}" rm -f "$SWAPFILE"
        log "removed $SWAPFILE"
    else
        log "$SWAPFILE not present"
    fi
    ;;
status)
    if is_active; then log "$SWAPFILE active"; exit 0; else log "$SWAPFILE not active"; exit 1; fi
    ;;
*)
    sed -n '2,9p' "$0" >&2
    exit 2
    ;;
esac
