#!/usr/bin/env bash
# test-images.sh — build the local images forge-shim's real-component tests use.
# No registry is needed: the base image is `docker import`ed from a rootfs made of
# the host's static busybox (Debian package busybox-static).
#
# Images:
#   forge-test/busybox:latest          root user, CMD ["sh"], /www/index.html = forge-test-ok
#   forge-test/busybox-nonroot:latest  FROM forge-test/busybox, USER 1000:1000
#   forge-test/httpd:latest            FROM forge-test/busybox, httpd on :8080 serving /www
#
# Usage: scripts/test-images.sh [--force]   (--force rebuilds images already present)
#
# Builds use the legacy builder (DOCKER_BUILDKIT=0): dockerd here is Debian's
# 20.10 and the CLI has no buildx plugin, and CLI >= 23 refuses DOCKER_BUILDKIT=1
# without buildx ("BuildKit is enabled but the buildx component is missing or
# broken"). The legacy builder works through the plain /build API.
set -euo pipefail

ME=test-images
log() { printf '[%s] %s\n' "$ME" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

FORCE=0
for a in "$@"; do
    case "$a" in
        --force|-f) FORCE=1 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) die "unknown argument: $a" ;;
    esac
done

BASE=forge-test/busybox:latest
NONROOT=forge-test/busybox-nonroot:latest
HTTPD=forge-test/httpd:latest

docker version --format '{{.Server.Version}}' >/dev/null 2>&1 \
    || die "docker does not answer; run scripts/setup-docker.sh first"

have_image() { docker image inspect "$1" >/dev/null 2>&1; }
need_build() {
    if [ "$FORCE" -eq 1 ]; then return 0; fi
    if have_image "$1"; then log "$1 present, skipping (use --force to rebuild)"; return 1; fi
    return 0
}

find_static_busybox() {
    local c
    for c in /bin/busybox /usr/bin/busybox; do
        if [ -x "$c" ] && file -L "$c" 2>/dev/null | grep -q 'statically linked'; then
            echo "$c"; return 0
        fi
        # `file` may be absent: a static binary has no PT_INTERP / ld.so reference.
        if [ -x "$c" ] && ! command -v file >/dev/null 2>&1 \
            && ! grep -qa 'ld-linux' "$c"; then
            echo "$c"; return 0
        fi
    done
    return 1
}

# With --force, remember the old image IDs so the replaced ones can be removed
# afterwards instead of piling up as <none> images.
OLD_IDS=()
if [ "$FORCE" -eq 1 ]; then
    for img in "$HTTPD" "$NONROOT" "$BASE"; do   # children first
        id=$(docker image inspect -f '{{.Id}}' "$img" 2>/dev/null) && OLD_IDS+=("$id") || true
    done
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/forge-test-images.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# --- base image via docker import --------------------------------------------
if need_build "$BASE"; then
    BB=$(find_static_busybox) || die "no static busybox found (apt-get install busybox-static)"
    log "building $BASE from rootfs with $BB ($("$BB" 2>&1 | head -n1))"
    R="$WORK/rootfs"
    mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,www,home/app,root,proc,sys,dev,var/tmp,run}
    cp "$BB" "$R/bin/busybox"
    chmod 0755 "$R/bin/busybox"
    n=0
    for applet in $("$R/bin/busybox" --list); do
        [ "$applet" = busybox ] && continue
        ln -sf busybox "$R/bin/$applet"
        n=$((n + 1))
    done
    log "linked $n applets into /bin"
    cat > "$R/etc/passwd" <<'PW'
root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:app:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PW
    cat > "$R/etc/group" <<'GR'
root:x:0:
app:x:1000:
nogroup:x:65534:
GR
    echo 'hosts: files dns' > "$R/etc/nsswitch.conf"
    echo 'forge-test-ok' > "$R/www/index.html"
    chmod 1777 "$R/tmp" "$R/var/tmp"
    chmod 0700 "$R/root"
    # --numeric-owner + explicit ownership: the rootfs is built by whoever runs
    # this script; inside the image everything is root-owned except /home/app.
    tar --numeric-owner --owner=0 --group=0 -C "$R" --exclude=./home/app -cf "$WORK/rootfs.tar" .
    tar --numeric-owner --owner=1000 --group=1000 -C "$R" -rf "$WORK/rootfs.tar" ./home/app
    docker import \
        --change 'CMD ["sh"]' \
        --change 'ENV PATH=/bin:/usr/bin:/sbin:/usr/sbin' \
        --message 'forge-shim test base (busybox-static)' \
        "$WORK/rootfs.tar" "$BASE" >/dev/null
    log "imported $BASE ($(docker image inspect -f '{{.Size}}' "$BASE") bytes)"
fi

build_from_dockerfile() { # image, dockerfile-text
    local img=$1 df=$2 ctx
    ctx="$WORK/ctx-${img//[\/:]/_}"
    mkdir -p "$ctx"
    printf '%s\n' "$df" > "$ctx/Dockerfile"
    log "building $img"
    DOCKER_BUILDKIT=0 docker build -q -t "$img" "$ctx" >/dev/null 2>"$ctx/build.err" || {
        cat "$ctx/build.err" >&2; die "docker build of $img failed"; }
    log "built $img"
}

if need_build "$NONROOT"; then
    build_from_dockerfile "$NONROOT" "FROM $BASE
USER 1000:1000
WORKDIR /home/app"
fi

if need_build "$HTTPD"; then
    build_from_dockerfile "$HTTPD" "FROM $BASE
EXPOSE 8080
CMD [\"httpd\",\"-f\",\"-p\",\"8080\",\"-h\",\"/www\"]"
fi

for id in "${OLD_IDS[@]}"; do
    # Only remove it if no tag points at it any more (i.e. it was replaced).
    if [ "$(docker image inspect -f '{{len .RepoTags}}' "$id" 2>/dev/null || echo x)" = 0 ]; then
        docker image rm "$id" >/dev/null 2>&1 && log "removed replaced image ${id:7:12}" || true
    fi
done

log "images: $(docker image ls --format '{{.Repository}}:{{.Tag}}' 'forge-test/*' | sort | tr '\n' ' ')"
