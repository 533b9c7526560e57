#!/usr/bin/env bash
# build-shim-image.sh — build the forge-shim container image here, with no
# registry: `FROM scratch` plus a root filesystem staged from this host.
#
# The image holds the forge-shim binary (stripped), exactly the shared
# libraries `ldd` names for it (the host's glibc, the one it was linked
# against), `conntrack` and its libraries when the host has it (wake on a
# new connection), and /etc/passwd and /etc/group (with the host's `docker`
# group id, so the shim's socket gets the same group as on the host).
# No shell, no package manager: nothing the shim does not run.
#
# Usage: scripts/build-shim-image.sh [--bin PATH] [--tag NAME]
#   --bin  the binary (default: target/release/forge-shim, built when missing)
#   --tag  the image (default: forge-shim:local)
#
# Builds with the legacy builder (DOCKER_BUILDKIT=0), as scripts/test-images.sh
# does; talks to whatever DOCKER_HOST names (dockerd by default).
set -euo pipefail

ME=build-shim-image
log() { printf '[%s] %s\n' "$ME" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

HERE=$(cd "$(dirname "$0")/.." && pwd)
BIN=""
TAG=forge-shim:local
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) BIN=${2:?--bin needs a path}; shift 2 ;;
        --tag) TAG=${2:?--tag needs a name}; shift 2 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) die "unknown argument: $1" ;;
    esac
done
if [ -z "$BIN" ]; then
    BIN=$HERE/target/release/forge-shim
    [ -x "$BIN" ] || (cd "$HERE" && cargo build --release)
fi
[ -x "$BIN" ] || die "no binary at $BIN"

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
rootfs=$ctx/rootfs

# A program and every library ldd resolves for it, at the same paths.
stage() {
    local src=$1 dest=$2 lib
    install -D -m 0755 "$src" "$rootfs$dest"
    for lib in $(ldd "$src" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
        [ -e "$rootfs$lib" ] && continue
        install -D -m 0755 "$(readlink -f "$lib")" "$rootfs$lib"
    done
}

stage "$BIN" /usr/local/bin/forge-shim
strip "$rootfs/usr/local/bin/forge-shim"
if command -v conntrack >/dev/null 2>&1; then
    stage "$(command -v conntrack)" /usr/sbin/conntrack
else
    log "no conntrack here: the image wakes sleepers from byte counters only"
fi

mkdir -p "$rootfs/etc" "$rootfs/run/forge-shim" "$rootfs/var/lib/forge-shim" "$rootfs/tmp"
chmod 1777 "$rootfs/tmp"
printf 'root:x:0:0:root:/:/nonexistent\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\n' >"$rootfs/etc/group"
if docker_gid=$(getent group docker | cut -d: -f3) && [ -n "$docker_gid" ]; then
    printf 'docker:x:%s:\n' "$docker_gid" >>"$rootfs/etc/group"
fi
cp "$HERE/examples/shim-container/Dockerfile" "$ctx/Dockerfile"

DOCKER_BUILDKIT=0 docker build -q -t "$TAG" "$ctx" >/dev/null
log "built $TAG ($(docker image inspect --format '{{.Size}}' "$TAG") bytes)"
echo "$TAG"
