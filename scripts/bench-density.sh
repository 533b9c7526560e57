#!/usr/bin/env bash
# bench-density.sh — the seed's headline figure: how much memory N copies of
# a real idle service take running and asleep, how many fit in a fixed memory
# budget each way, what a wake storm costs, and what the shim itself costs,
# all in one run with a release shim in front of the local dockerd.
#
#   1. N copies of forge-test/python-api and P of forge-test/postgres
#      (scripts/service-images.sh), created through the shim on a network of
#      this run's own, left to settle; memory running: each container's cgroup
#      (memory.usage_in_bytes, memory.stat rss/cache/swap), its
#      containerd-shim's PSS (outside the cgroup, but paid per container) and
#      the host's MemAvailable.
#   2. Baseline storm: one HTTP GET to every python-api copy at once (curl in
#      background jobs, time to first byte), all awake.
#   3. All put to sleep through the shim (POST /_forge/v1/containers/NAME/sleep,
#      a few at a time) with `memory_squeeze: true` and a swap file of this
#      run's own; memory asleep, the same readings.
#   4. Wake storm: the same GET to every sleeper at once (at most 50).
#   5. The shim's CPU time (utime+stime) and RSS, sampled every second.
# Fit in a budget: BUDGET MiB divided by the average per-container cost
# (cgroup usage + containerd-shim PSS); asleep, the shim's own peak RSS is
# taken off the budget first. Swap is disk, not budget: it is shown apart.
#
# The shim gets the embedded shim.yml plus a `bench` class (sleeps, never by
# itself: idle_timeout 1h; squeeze target `memory_reservation` = RESERVATION)
# that this run's containers are classified into by name. forge-test/postgres
# does not match the embedded `postgres*` image glob (that glob is anchored:
# `forge-test/postgres` starts with `forge-test/`), so it would be class
# `normal` anyway; the name rule makes both images the same class. Standards
# are off (mode: off): this measures sleep, not the create-time rules.
#
# Usage: scripts/bench-density.sh [N] [P]     (default 50 python-api, 8 postgres)
# Env:   BUDGET (MiB, default 1024), RESERVATION (default 4M),
#        SETTLE (s, default 20), SWAP_SIZE (default 2G),
#        SHIM_BIN (a forge-shim binary to run instead of building one)
# Needs: root (cgroup files, swap), a running dockerd, the service images.
# Everything it makes is removed at the end, even when interrupted: the
# containers fs-density-<pid>-*, the network fs-density-<pid>, the swap file.
set -euo pipefail

ME=bench-density
log() { printf '[%s] %s\n' "$ME" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

N=${1:-50}
P=${2:-8}
BUDGET=${BUDGET:-1024}
RESERVATION=${RESERVATION:-4M}
SETTLE=${SETTLE:-20}
SWAP_SIZE=${SWAP_SIZE:-2G}
API_IMAGE=forge-test/python-api:latest
PG_IMAGE=forge-test/postgres:latest
DIRECT_HOST=unix:///var/run/docker.sock
STORM_MAX=50

cd "$(dirname "$0")/.."

[ "$(id -u)" -eq 0 ] || die "run as root (cgroup files and a swap file)"
DOCKER_HOST=$DIRECT_HOST docker version --format '{{.Server.Version}}' >/dev/null 2>&1 \
    || die "dockerd does not answer; run scripts/setup-docker.sh"
for image in "$API_IMAGE" "$PG_IMAGE"; do
    DOCKER_HOST=$DIRECT_HOST docker image inspect "$image" >/dev/null 2>&1 \
        || die "$image is missing; run scripts/service-images.sh"
done
[ -d /sys/fs/cgroup/memory/docker ] || die "this bench reads cgroup v1 (/sys/fs/cgroup/memory/docker)"

if [ -n "${SHIM_BIN:-}" ]; then
    shim_bin=$SHIM_BIN
else
    log "building the release shim (if needed)"
    cargo build --release --quiet --bin forge-shim
    target_dir=$(cargo metadata --format-version 1 --no-deps \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null \
        || echo target)
    shim_bin="$target_dir/release/forge-shim"
fi
[ -x "$shim_bin" ] || die "$shim_bin was not built"

prefix="fs-density-$$"
work=$(mktemp -d /tmp/bench-density.XXXXXX)
export FORGE_SWAPFILE=/var/tmp/forge-shim-bench-density-$$.swap
shim_pid=
sampler_pid=
cleanup() {
    set +e
    [ -z "$sampler_pid" ] || kill "$sampler_pid" 2>/dev/null
    # Remove the containers straight on dockerd first: a shim stopping with
    # on_shutdown: wake_all would wake them all for nothing.
    ids=$(DOCKER_HOST=$DIRECT_HOST docker ps -aq --filter "name=^/?$prefix-" 2>/dev/null)
    [ -z "$ids" ] || DOCKER_HOST=$DIRECT_HOST docker rm -f $ids >/dev/null 2>&1
    DOCKER_HOST=$DIRECT_HOST docker network rm "$prefix" >/dev/null 2>&1
    if [ -n "$shim_pid" ] && kill -0 "$shim_pid" 2>/dev/null; then
        kill "$shim_pid" 2>/dev/null
        wait "$shim_pid" 2>/dev/null
    fi
    bash scripts/with-swap.sh off >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- helpers -----------------------------------------------------------------

# Median of a few MemAvailable readings (KiB), 1 s apart: other work moves it.
mem_available() {
    for _ in 1 2 3 4 5; do
        awk '/^MemAvailable:/ {print $2}' /proc/meminfo
        sleep 1
    done | sort -n | sed -n 3p
}
swap_used_kib() { awk '/^SwapTotal:/ {t=$2} /^SwapFree:/ {f=$2} END {print t-f}' /proc/meminfo; }

# PSS (KiB) of the containerd-shim that runs container $1.
containerd_shim_pss() {
    local pid
    for pid in $(pgrep -f "containerd-shim.*-id $1" 2>/dev/null); do
        awk '/^Pss:/ {print $2; exit}' "/proc/$pid/smaps_rollup" 2>/dev/null && return
    done
    echo 0
}

# One line per container: name usage_bytes rss cache swap shim_pss_kib
memory_table() {
    local name id dir
    while read -r name id; do
        dir=/sys/fs/cgroup/memory/docker/$id
        printf '%s %s %s %s\n' "$name" "$(cat "$dir/memory.usage_in_bytes")" \
            "$(awk '$1=="total_rss" {r=$2} $1=="total_cache" {c=$2} $1=="total_swap" {s=$2} END {print r+0, c+0, s+0}' "$dir/memory.stat")" \
            "$(containerd_shim_pss "$id")"
    done <"$work/ids.txt"
}

# Sums in MiB of a memory_table file, for rows whose name matches $2:
# count usage rss cache swap shim_pss
memory_sums() {
    awk -v pat="$2" '$1 ~ pat { n++; u+=$2; r+=$3; c+=$4; s+=$5; p+=$6 }
        END { printf "%d %.2f %.2f %.2f %.2f %.2f\n", n, u/1048576, r/1048576, c/1048576, s/1048576, p/1024 }' "$1"
}

# GET http://IP:8000/ on every python-api copy at once; time to first byte
# (ms) per request into $1. Failures are counted, not hidden.
storm() {
    local out=$1 ip i=0 pids=()
    : >"$out"
    mkdir -p "$work/storm"
    rm -f "$work/storm/"*
    while read -r ip; do
        i=$((i + 1))
        [ "$i" -le "$STORM_MAX" ] || break
        ( curl -s -o /dev/null --max-time 30 -w '%{http_code} %{time_starttransfer}\n' "http://$ip:8000/storm" \
            >"$work/storm/$i" 2>/dev/null || echo "000 0" >"$work/storm/$i" ) &
        pids+=($!)
    done <"$work/api-ips.txt"
    # Only these: a bare `wait` would wait for the sampler too.
    wait "${pids[@]}"
    cat "$work/storm/"* >"$out"
}
# p50 p99 max (ms) and failures of a storm file.
storm_stats() {
    awk '$1 != "200" { bad++ } $1 == "200" { print $2 * 1000 }
        END { print "bad", bad + 0 > "/dev/stderr" }' "$1" 2>"$1.bad" | sort -n | awk '
        { v[NR] = $1 }
        function rank(q,  r) { r = int(q * NR); if (r < q * NR) r++; if (r < 1) r = 1; return v[r] }
        END { if (NR == 0) { print "- - - 0"; exit } printf "%.2f %.2f %.2f %d\n", rank(0.50), rank(0.99), v[NR], NR }'
}

shim_api() { curl -fsS --unix-socket "$work/docker.sock" -X "$1" "http://forge$2"; }
# name state class, for this run's containers.
shim_rows() {
    shim_api GET /_forge/v1/containers | python3 -c '
import json, sys
for r in json.load(sys.stdin):
    if r["name"].lstrip("/").startswith(sys.argv[1]):
        print(r["name"].lstrip("/"), r["state"], r["class"], r.get("wakes", 0))' "$prefix"
}

# --- the shim ------------------------------------------------------------------

cat "shim.yml" >"$work/shim.yml"
sed -i -e "s#^listen:.*#listen: $work/docker.sock#" \
    -e "s#^state_dir:.*#state_dir: $work/state#" \
    -e 's#^  mode: enforce .*#  mode: off#' \
    -e "s#^  min_uptime: .*#  min_uptime: 0#" \
    -e "s#^  memory_squeeze: .*#  memory_squeeze: true#" \
    "$work/shim.yml"
# The bench class, and a name rule put first in `classify`.
python3 - "$work/shim.yml" "$prefix" "$RESERVATION" <<'EOF'
import sys
path, prefix, reservation = sys.argv[1:]
text = open(path).read()
text = text.replace("\nclasses:\n", "\nclasses:\n  bench:\n    sleep_policy: { enabled: true, idle_timeout: 3600, "
                    f"min_sleep_time: 60, memory_reservation: {reservation}, priority: normal }}\n", 1)
text = text.replace("\nclassify:\n", f"\nclassify:\n  - match: {{ name: \"{prefix}-*\" }}\n    class: bench\n", 1)
open(path, "w").write(text)
EOF
"$shim_bin" check --config "$work/shim.yml" >"$work/effective.yml" || die "the bench config does not validate"
grep -q "name: $prefix-\*\|$prefix-\*" "$work/effective.yml" || die "the bench classify rule is not in the effective config"

log "starting the release shim on $work/docker.sock"
RUST_LOG=warn "$shim_bin" serve --config "$work/shim.yml" >"$work/shim.log" 2>&1 &
shim_pid=$!
for _ in $(seq 1 200); do
    [ -S "$work/docker.sock" ] && shim_api GET /_forge/v1/health >/dev/null 2>&1 && break
    kill -0 "$shim_pid" 2>/dev/null || { cat "$work/shim.log" >&2; die "the shim exited"; }
    sleep 0.05
done
[ -S "$work/docker.sock" ] || die "the shim did not start"
SHIM_HOST="unix://$work/docker.sock"

# The sampler: elapsed_s cpu_ticks rss_kib, every second.
clk=$(getconf CLK_TCK)
t0=$(date +%s.%N)
(
    while kill -0 "$shim_pid" 2>/dev/null; do
        ticks=$(awk '{ sub(/.*\) /, ""); split($0, f, " "); print f[12] + f[13] }' "/proc/$shim_pid/stat" 2>/dev/null || echo 0)
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$shim_pid/status" 2>/dev/null || echo 0)
        echo "$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.1f", a - b }') $ticks $rss"
        sleep 1
    done
) >"$work/shim-samples.txt" &
sampler_pid=$!
mark() { echo "$1 $(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.1f", a - b }') $(awk '{ sub(/.*\) /, ""); split($0, f, " "); print f[12] + f[13] }' "/proc/$shim_pid/stat")" >>"$work/marks.txt"; }

log "swap file $FORGE_SWAPFILE ($SWAP_SIZE)"
bash scripts/with-swap.sh on "$SWAP_SIZE" >/dev/null 2>&1 || die "could not add a swap file"

# --- 1. start and settle ---------------------------------------------------------

log "host MemAvailable before any container"
avail_before=$(mem_available)
swap_used_before=$(swap_used_kib)
mark start

DOCKER_HOST=$DIRECT_HOST docker network create "$prefix" >/dev/null
log "starting $N x $API_IMAGE and $P x $PG_IMAGE through the shim"
: >"$work/ids.txt"
for i in $(seq 1 "$N"); do
    id=$(DOCKER_HOST=$SHIM_HOST docker run -d --network "$prefix" --name "$prefix-api-$i" "$API_IMAGE" 2>>"$work/run.log") \
        || { cat "$work/run.log" >&2; die "docker run $prefix-api-$i failed"; }
    echo "$prefix-api-$i $id" >>"$work/ids.txt"
done
for i in $(seq 1 "$P"); do
    id=$(DOCKER_HOST=$SHIM_HOST docker run -d --network "$prefix" --name "$prefix-pg-$i" "$PG_IMAGE" 2>>"$work/run.log") \
        || { cat "$work/run.log" >&2; die "docker run $prefix-pg-$i failed"; }
    echo "$prefix-pg-$i $id" >>"$work/ids.txt"
done
grep -- '-api-' "$work/ids.txt" | while read -r name _; do
    DOCKER_HOST=$DIRECT_HOST docker inspect -f "{{(index .NetworkSettings.Networks \"$prefix\").IPAddress}}" "$name"
done >"$work/api-ips.txt"
mark started

log "waiting for every copy to answer"
deadline=$((SECONDS + 180))
while read -r ip; do
    until curl -fs -o /dev/null --max-time 2 "http://$ip:8000/ready"; do
        [ "$SECONDS" -lt "$deadline" ] || die "python-api at $ip does not answer"
        sleep 0.5
    done
done <"$work/api-ips.txt"
for i in $(seq 1 "$P"); do
    until DOCKER_HOST=$DIRECT_HOST docker exec "$prefix-pg-$i" pg_isready -q -h 127.0.0.1 >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || die "$prefix-pg-$i is not ready"
        sleep 1
    done
done
log "settling ${SETTLE}s"
sleep "$SETTLE"
shim_rows >"$work/rows-running.txt"
bad_class=$(awk '$3 != "bench"' "$work/rows-running.txt" | wc -l)
tracked=$(wc -l <"$work/rows-running.txt")
[ "$tracked" -eq $((N + P)) ] || die "the shim tracks $tracked of $((N + P)) containers"
[ "$bad_class" -eq 0 ] || { cat "$work/rows-running.txt" >&2; die "not every container is in class bench"; }
memory_table >"$work/mem-running.txt"
avail_running=$(mem_available)
swap_used_running=$(swap_used_kib)

# --- 2. baseline storm -------------------------------------------------------------

log "baseline storm (all awake)"
storm "$work/storm-awake.txt"
sleep 2
storm "$work/storm-awake2.txt"
cat "$work/storm-awake2.txt" >>"$work/storm-awake.txt"

# --- 3. sleep -----------------------------------------------------------------------

log "putting all $((N + P)) to sleep through the shim (squeeze to $RESERVATION)"
mark sleep_start
sleep_started=$(date +%s%N)
# A sleep is refused (changed: false) while something is in use: retry a little.
sleep_one() { # socket name failed-file
    local answer
    for _ in $(seq 1 50); do
        answer=$(curl -fsS --unix-socket "$1" -X POST "http://forge/_forge/v1/containers/$2/sleep" 2>&1) || true
        case "$answer" in *'"state":"sleeping"'*) return 0 ;; esac
        sleep 0.1
    done
    echo "$2: $answer" >>"$3"
}
export -f sleep_one
awk '{print $1}' "$work/ids.txt" | xargs -P 4 -I{} bash -c 'sleep_one "$@"' _ "$work/docker.sock" {} "$work/sleep-failed.txt"
sleep_ms=$(( ($(date +%s%N) - sleep_started) / 1000000 ))
mark sleep_done
[ ! -s "$work/sleep-failed.txt" ] || { cat "$work/sleep-failed.txt" >&2; die "some sleeps failed"; }
log "asleep; settling ${SETTLE}s"
sleep "$SETTLE"
mark asleep_window_start
memory_table >"$work/mem-asleep.txt"
avail_asleep=$(mem_available)
swap_used_asleep=$(swap_used_kib)
shim_rows >"$work/rows-asleep.txt"
mark asleep_window_end
woke_unasked=$(awk '$2 != "sleeping"' "$work/rows-asleep.txt" | wc -l)

# --- 4. wake storm -------------------------------------------------------------------

storm_n=$(( N < STORM_MAX ? N : STORM_MAX ))
log "wake storm: $storm_n sleepers at once"
mark storm_start
storm "$work/storm-asleep.txt"
mark storm_done
sleep 2
shim_rows >"$work/rows-after.txt"
awake_after=$(grep -- '-api-' "$work/rows-after.txt" | awk '$2 == "running"' | wc -l)
mark end

# --- report ------------------------------------------------------------------------

kill "$sampler_pid" 2>/dev/null || true
wait "$sampler_pid" 2>/dev/null || true
sampler_pid=

read -r run_n run_u run_r run_c run_s run_p < <(memory_sums "$work/mem-running.txt" .)
read -r slp_n slp_u slp_r slp_c slp_s slp_p < <(memory_sums "$work/mem-asleep.txt" .)
read -r _ api_run_u _ _ _ api_run_p < <(memory_sums "$work/mem-running.txt" -api-)
read -r _ api_slp_u _ _ _ api_slp_p < <(memory_sums "$work/mem-asleep.txt" -api-)
read -r _ pg_run_u _ _ _ pg_run_p < <(memory_sums "$work/mem-running.txt" -pg-)
read -r _ pg_slp_u _ _ _ pg_slp_p < <(memory_sums "$work/mem-asleep.txt" -pg-)
read -r a50 a99 amax aok < <(storm_stats "$work/storm-awake.txt")
read -r s50 s99 smax sok < <(storm_stats "$work/storm-asleep.txt")
abad=$(awk '{print $2}' "$work/storm-awake.txt.bad")
sbad=$(awk '{print $2}' "$work/storm-asleep.txt.bad")
rss_peak=$(awk '$3 > m { m = $3 } END { print m + 0 }' "$work/shim-samples.txt")
rss_end=$(tail -1 "$work/shim-samples.txt" | awk '{print $3}')
ticks_of() { awk -v k="$1" '$1 == k {print $3}' "$work/marks.txt"; }
time_of() { awk -v k="$1" '$1 == k {print $2}' "$work/marks.txt"; }
cpu_s() { awk -v a="$(ticks_of "$1")" -v b="$(ticks_of "$2")" -v c="$clk" 'BEGIN { printf "%.2f", (b - a) / c }'; }
pct() { awk -v a="$(ticks_of "$1")" -v b="$(ticks_of "$2")" -v c="$clk" -v s="$(time_of "$1")" -v e="$(time_of "$2")" \
    'BEGIN { d = e - s; if (d <= 0) d = 1; printf "%.2f%%", 100 * (b - a) / c / d }'; }

machine="$(nproc) vCPU ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/^MemTotal:/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, kernel $(uname -r), dockerd $(DOCKER_HOST=$DIRECT_HOST docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})'), cgroup v1, load $(cut -d' ' -f1-3 /proc/loadavg)"

awk -v N="$N" -v P="$P" -v B="$BUDGET" -v total="$run_n" \
    -v ru="$run_u" -v rr="$run_r" -v rc="$run_c" -v rs="$run_s" -v rp="$run_p" \
    -v su="$slp_u" -v sr="$slp_r" -v sc="$slp_c" -v ss="$slp_s" -v sp="$slp_p" \
    -v aru="$api_run_u" -v arp="$api_run_p" -v asu="$api_slp_u" -v asp="$api_slp_p" \
    -v pru="$pg_run_u" -v prp="$pg_run_p" -v psu="$pg_slp_u" -v psp="$pg_slp_p" \
    -v hb="$avail_before" -v hr="$avail_running" -v hs="$avail_asleep" \
    -v swb="$swap_used_before" -v swr="$swap_used_running" -v sws="$swap_used_asleep" \
    -v rss="$rss_peak" -v machine="$machine" -v res="$RESERVATION" '
function fit(budget, each) { return (each > 0 ? int(budget / each) : 0) }
BEGIN {
    printf "\n# forge-shim density benchmark\nmachine: %s\n", machine
    printf "containers: %d x forge-test/python-api + %d x forge-test/postgres (idle), squeeze target %s, budget %d MiB\n\n", N, P, res, B
    print "| memory (MiB) | running | asleep | asleep / running |"
    print "|---|---:|---:|---:|"
    printf "| cgroups, all %d: memory.usage_in_bytes | %.1f | %.1f | %.1f%% |\n", total, ru, su, 100 * su / ru
    printf "| … of which rss / page cache | %.1f / %.1f | %.1f / %.1f | |\n", rr, rc, sr, sc
    printf "| … in swap (memory.stat swap; disk, not RAM) | %.1f | %.1f | |\n", rs, ss
    printf "| containerd-shims, PSS (outside the cgroups) | %.1f | %.1f | |\n", rp, sp
    printf "| per python-api copy: cgroup + containerd-shim | %.2f | %.2f | %.1f%% |\n", (aru + arp) / N, (asu + asp) / N, 100 * (asu + asp) / (aru + arp)
    if (P > 0) printf "| per postgres copy: cgroup + containerd-shim | %.2f | %.2f | %.1f%% |\n", (pru + prp) / P, (psu + psp) / P, 100 * (psu + psp) / (pru + prp)
    printf "| host: MemAvailable drop from before the run (noisy) | %.1f | %.1f | %.1f%% |\n", (hb - hr) / 1024, (hb - hs) / 1024, ((hb - hr) > 0 ? 100 * (hb - hs) / (hb - hr) : 0)
    printf "| host: swap used, added by the run | %.1f | %.1f | |\n", (swr - swb) / 1024, (sws - swb) / 1024
    er = (ru + rp) / total; es = (su + sp) / total
    printf "\nfit in %d MiB (budget / average cgroup + containerd-shim per container; asleep, the shim'\''s peak RSS %.1f MiB taken off first):\n", B, rss / 1024
    fr = fit(B, er); fs = fit(B - rss / 1024, es)
    printf "| | per container | fit | ratio |\n|---|---:|---:|---:|\n"
    printf "| running | %.2f MiB | %d | 1x |\n| asleep | %.2f MiB | %d | %.2fx |\n", er, fr, es, fs, (fr > 0 ? fs / fr : 0)
    printf "memory reduction per container asleep: %.1f%%\n", 100 * (1 - es / er)
}'

printf '\n| wake storm, GET to each python-api copy at once | p50 | p99 | max | answered |\n|---|---:|---:|---:|---:|\n'
printf '| all awake (baseline, 2 storms) | %s ms | %s ms | %s ms | %s (%s failed) |\n' "$a50" "$a99" "$amax" "$aok" "$abad"
printf '| all %s asleep | %s ms | %s ms | %s ms | %s (%s failed) |\n' "$storm_n" "$s50" "$s99" "$smax" "$sok" "$sbad"
printf 'awake after the storm: %s of %s python-api copies; woken with no client before the storm: %s of %s\n' \
    "$awake_after" "$N" "$woke_unasked" "$((N + P))"

printf '\n| shim | |\n|---|---:|\n'
printf '| CPU, whole run (%.0f s) | %s s (%s of a core) |\n' "$(time_of end)" "$(cpu_s start end)" "$(pct start end)"
printf '| CPU, %s creates and starts | %s s |\n' "$((N + P))" "$(cpu_s start started)"
printf '| CPU, %s sleeps with squeeze (%s ms wall, 4 at a time) | %s s |\n' "$((N + P))" "$sleep_ms" "$(cpu_s sleep_start sleep_done)"
printf '| CPU, all asleep (settle + readings, %.0f s) | %s |\n' \
    "$(awk -v a="$(time_of sleep_done)" -v b="$(time_of asleep_window_end)" 'BEGIN { print b - a }')" "$(pct sleep_done asleep_window_end)"
printf '| CPU, wake storm | %s s |\n' "$(cpu_s storm_start storm_done)"
printf '| RSS peak / at the end | %.1f / %.1f MB |\n' "$(awk -v k="$rss_peak" 'BEGIN { print k * 1024 / 1e6 }')" "$(awk -v k="$rss_end" 'BEGIN { print k * 1024 / 1e6 }')"
printf '\ncommand: scripts/bench-density.sh %s %s (BUDGET=%s RESERVATION=%s SETTLE=%s)\n' "$N" "$P" "$BUDGET" "$RESERVATION" "$SETTLE"

if grep -qi 'panicked' "$work/shim.log"; then
    cat "$work/shim.log" >&2
    die "the shim panicked"
fi
