#!/usr/bin/env bash
# service-images.sh — build real service images from Debian's packages, shaped
# like the official images, for the tests and benches that need more than
# busybox. No registry is needed: one bookworm rootfs is debootstrapped from
# Debian's archive and `docker import`ed; each service is a small `docker
# build` FROM it.
#
# Images (all FROM forge-test/debian-services:latest, bookworm minbase):
#   forge-test/nginx:latest     nginx-light; `nginx -g 'daemon off;'` as root,
#                               workers as www-data (as the official image);
#                               writes /var/lib/nginx and /run/nginx.pid;
#                               port 80 serves "forge-test-nginx-ok",
#                               /api/ proxies to http://api:8000 (resolved per
#                               request, so it starts without an `api`)
#   forge-test/python-api:latest  python3 http.server on :8000 as root, writes
#                               its cache under /app/cache (an app's own dir)
#   forge-test/postgres:latest  postgresql-15; entrypoint starts as root,
#                               chowns PGDATA, drops to postgres with gosu;
#                               VOLUME /var/lib/postgresql/data; trust auth
#   forge-test/redis:latest     redis-server; entrypoint chowns /data, drops
#                               to redis with gosu; VOLUME /data
#
# Usage: scripts/service-images.sh [--force]
# Env:   DEBIAN_MIRROR (default http://deb.debian.org/debian)
set -euo pipefail

ME=service-images
log() { printf '[%s] %s\n' "$ME" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

FORCE=0
for a in "$@"; do
    case "$a" in
        --force|-f) FORCE=1 ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) die "unknown argument: $a" ;;
    esac
done

BASE=forge-test/debian-services:latest
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES=nginx-light,python3,postgresql-15,redis-server,gosu

docker version --format '{{.Server.Version}}' >/dev/null 2>&1 \
    || die "docker does not answer; run scripts/setup-docker.sh first"

have_image() { docker image inspect "$1" >/dev/null 2>&1; }
need_build() {
    if [ "$FORCE" -eq 1 ]; then return 0; fi
    if have_image "$1"; then log "$1 present, skipping (use --force to rebuild)"; return 1; fi
    return 0
}

# Same builder as test-images.sh (Debian's dockerd 20.10, no buildx).
build() {
    local tag=$1 dir=$2
    log "building $tag"
    DOCKER_BUILDKIT=0 docker build -q -t "$tag" "$dir" >/dev/null 2>"$dir/build.log" \
        || { cat "$dir/build.log" >&2; die "docker build of $tag failed"; }
}

if need_build "$BASE"; then
    if ! command -v debootstrap >/dev/null 2>&1; then
        log "installing debootstrap"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q debootstrap >/dev/null 2>&1 \
            || { apt-get update -q >/dev/null && apt-get install -y -q debootstrap >/dev/null; } \
            || die "cannot install debootstrap"
    fi
    ROOTFS=$(mktemp -d /tmp/forge-services-rootfs.XXXXXX)
    trap 'rm -rf "$ROOTFS"' EXIT
    log "debootstrap bookworm ($PACKAGES) from $MIRROR (about 90 s)"
    debootstrap --variant=minbase --include="$PACKAGES" bookworm "$ROOTFS" "$MIRROR" \
        >"$ROOTFS.log" 2>&1 || { tail -20 "$ROOTFS.log" >&2; die "debootstrap failed (log: $ROOTFS.log)"; }
    rm -f "$ROOTFS.log"
    # Shaped like the official images: no package caches, no apt lists.
    rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
    log "importing $BASE"
    tar -C "$ROOTFS" -c . | docker import \
        -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        -c 'CMD ["bash"]' - "$BASE" >/dev/null
    rm -rf "$ROOTFS"
    trap - EXIT
fi

CTX=$(mktemp -d /tmp/forge-services-ctx.XXXXXX)
trap 'rm -rf "$CTX"' EXIT

# --- nginx -------------------------------------------------------------------
if need_build forge-test/nginx:latest; then
    mkdir -p "$CTX/nginx"
    cat >"$CTX/nginx/default.conf" <<'EOF'
server {
    listen 80 default_server;
    root /var/www/html;
    location / { try_files $uri $uri/ =404; }
    location /api/ {
        resolver 127.0.0.11 valid=10s ipv6=off;
        set $api http://api:8000;
        proxy_pass $api;
    }
}
EOF
    cat >"$CTX/nginx/Dockerfile" <<EOF
FROM $BASE
RUN rm -f /etc/nginx/sites-enabled/default \\
 && echo forge-test-nginx-ok > /var/www/html/index.html \\
 && ln -sf /dev/stdout /var/log/nginx/access.log \\
 && ln -sf /dev/stderr /var/log/nginx/error.log \\
 && rm -rf /var/lib/nginx/*
COPY default.conf /etc/nginx/conf.d/default.conf
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
EOF
    build forge-test/nginx:latest "$CTX/nginx"
fi

# --- python API ----------------------------------------------------------------
if need_build forge-test/python-api:latest; then
    mkdir -p "$CTX/api"
    cat >"$CTX/api/app.py" <<'EOF'
import http.server, os, time

CACHE = "/app/cache"
os.makedirs(CACHE, exist_ok=True)
with open(os.path.join(CACHE, "started"), "w") as f:
    f.write(str(time.time()))

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(os.path.join(CACHE, "last-request"), "w") as f:
            f.write(self.path)
        body = b"forge-test-api-ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

http.server.ThreadingHTTPServer(("", 8000), Handler).serve_forever()
EOF
    cat >"$CTX/api/Dockerfile" <<EOF
FROM $BASE
WORKDIR /app
COPY app.py /app/app.py
ENV PYTHONUNBUFFERED=1
EXPOSE 8000
CMD ["python3", "/app/app.py"]
EOF
    build forge-test/python-api:latest "$CTX/api"
fi

# --- postgres ------------------------------------------------------------------
if need_build forge-test/postgres:latest; then
    mkdir -p "$CTX/postgres"
    cat >"$CTX/postgres/entrypoint.sh" <<'EOF'
#!/bin/sh
set -e
PGDATA=${PGDATA:-/var/lib/postgresql/data}
export PGDATA
if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown -R postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    exec gosu postgres "$0" "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    initdb -D "$PGDATA" --auth=trust --username=postgres >/dev/null
    echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
    echo "host all all all trust" >>"$PGDATA/pg_hba.conf"
fi
exec "$@"
EOF
    cat >"$CTX/postgres/Dockerfile" <<EOF
FROM $BASE
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    PGDATA=/var/lib/postgresql/data
COPY entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN chmod 755 /usr/local/bin/docker-entrypoint.sh \\
 && mkdir -p /var/run/postgresql && chown postgres:postgres /var/run/postgresql && chmod 2777 /var/run/postgresql
VOLUME /var/lib/postgresql/data
ENTRYPOINT ["docker-entrypoint.sh"]
EXPOSE 5432
STOPSIGNAL SIGINT
CMD ["postgres"]
EOF
    build forge-test/postgres:latest "$CTX/postgres"
fi

# --- redis ---------------------------------------------------------------------
if need_build forge-test/redis:latest; then
    mkdir -p "$CTX/redis"
    cat >"$CTX/redis/entrypoint.sh" <<'EOF'
#!/bin/sh
set -e
if [ "$(id -u)" = 0 ]; then
    chown -R redis:redis /data
    exec gosu redis "$0" "$@"
fi
exec "$@"
EOF
    cat >"$CTX/redis/Dockerfile" <<EOF
FROM $BASE
COPY entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN chmod 755 /usr/local/bin/docker-entrypoint.sh && mkdir -p /data && chown redis:redis /data
VOLUME /data
WORKDIR /data
ENTRYPOINT ["docker-entrypoint.sh"]
EXPOSE 6379
CMD ["redis-server", "--protected-mode", "no", "--dir", "/data"]
EOF
    build forge-test/redis:latest "$CTX/redis"
fi

log "images: $(docker images --format '{{.Repository}}:{{.Tag}}' | grep -E '^forge-test/(debian-services|nginx|python-api|postgres|redis):' | sort | tr '\n' ' ')"
