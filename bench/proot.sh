#!/usr/bin/env bash
# RUN steps on a Debian base: kiln with `--executor=proot` next to BuildKit (`docker build` on a
# dockerd this script starts with vfs storage, no iptables, no bridge, as bench/rebuild.sh does),
# the same Dockerfiles side by side in one run, the two tools taking turns build by build so
# both see the same load. Run as root (dockerd needs it; kiln does not).
#
# The base is scripts/debian-base's minbase bookworm (debootstrap: network, ~30 s the first
# time), an OCI layout. kiln takes it with `--build-context debian=oci-layout://DIR:bookworm`;
# dockerd gets the same image through skopeo and `docker load`, tagged `debian`, so `FROM
# debian` resolves locally for both (the script fails if BuildKit asks a registry instead).
#
# Cases, every build but (d) with --no-cache, each tool's store warmed once with the base:
#   a) 10 trivial RUN steps (`RUN echo $i > /f$i`), and a 1-step build of the same kind: the
#      cost per step, (10-step - 1-step) / 9 (kiln: bring the step's directory in step with
#      the stage, proot, snapshot; BuildKit:
#      container start and snapshot, which on vfs is a copy of the rootfs);
#   b) `apt-get update && apt-get install -y --no-install-recommends hello` (network: mind the
#      spread between runs, printed next to each median);
#   c) a fork-heavy step, 500 runs of /bin/true from a shell loop (proot traces every exec),
#      and the cost per exec, as the loop timed itself inside the step;
#   d) a no-change rebuild of (a) with a warm cache.
# Prints the median (min..max) of RUNS (default 3) of each, kiln/BuildKit ratios, and kiln's
# peak RSS (GNU time: the largest of kiln and the processes it waited for, proot among them).
#
#   bench/proot.sh
#   RUNS=5 bench/proot.sh
#   BENCH_ONLY=buildkit bench/proot.sh # or BENCH_ONLY=kiln: one half, no ratios
#   TMPDIR=DIR bench/proot.sh          # where both stores (and kiln's step trees) are made
#
# The file system under TMPDIR decides much of a step's cost: kiln writes the stage's tree
# out at its first step (thousands of files; later steps write only what differs), BuildKit on
# vfs copies the rootfs at every step, and an ext4 that has just deleted many inodes is slow
# to allocate new ones. Keep BuildKit off a
# tmpfs unless it is large: vfs keeps a full copy of the rootfs for every step it caches.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
ONLY=${BENCH_ONLY:-}
want() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]; }
TIME=/usr/bin/time
[ -x "$TIME" ] || { echo "needs GNU time (apt-get install time)" >&2; exit 1; }

if want kiln; then
    cargo build --release --locked --quiet -p kiln
    KILN="${CARGO_TARGET_DIR:-$PWD/target}/release/kiln"
    command -v proot >/dev/null || { echo "needs proot (apt-get install proot)" >&2; exit 1; }
fi
# Debian's docker.io client drives its dockerd's built-in BuildKit; a newer client alone wants
# the buildx plugin, so prefer the one that came with dockerd.
DOCKER=$(command -v /usr/bin/docker || command -v docker || true)
if want buildkit; then
    if ! command -v dockerd >/dev/null || [ -z "$DOCKER" ]; then
        [ "$ONLY" = buildkit ] && { echo "needs dockerd (apt-get install docker.io)" >&2; exit 1; }
        echo "BuildKit: no dockerd on this machine (apt-get install docker.io); kiln only"
        ONLY=kiln
    elif ! command -v skopeo >/dev/null; then
        echo "needs skopeo to hand the base to dockerd (apt-get install skopeo)" >&2
        exit 1
    fi
fi

work=$(mktemp -d)
dockerd_pid=""
cleanup() {
    if [ -n "$dockerd_pid" ]; then
        kill "$dockerd_pid" 2>/dev/null || true
        wait "$dockerd_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

now_ms() { date +%s%3N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'; }

# --- the base ----------------------------------------------------------------------------
# Cached where scripts/debian-base keeps it (the target directory), so only the first run
# waits for debootstrap.
layout=$(scripts/debian-base | tail -1)

# --- the Dockerfiles ---------------------------------------------------------------------
mkctx() { # mkctx NAME LINE...: a context holding a Dockerfile of FROM debian and LINEs
    local dir="$work/ctx-$1"
    shift
    mkdir -p "$dir"
    { echo "FROM debian"; printf '%s\n' "$@"; } > "$dir/Dockerfile"
}
steps=()
for i in $(seq 10); do steps+=("RUN echo $i > /f$i"); done
mkctx a "${steps[@]}"
mkctx a1 "RUN echo 1 > /f1"
mkctx b "RUN apt-get update && apt-get install -y --no-install-recommends hello"
# The loop times itself too, so the cost per exec comes without the step's own around it.
mkctx c 'RUN s=$(date +%s%N); for i in $(seq 500); do /bin/true; done; e=$(date +%s%N); echo "exec-loop-ns $((e - s))"'

# --- the tools ---------------------------------------------------------------------------
# build TOOL CASE [FLAG...]: one build, its output (progress and the steps' output, plain
# text) into $work/out; kiln's peak RSS (KiB) into $work/rss. BuildKit gets the host network,
# as kiln's steps have it (and dockerd has no bridge).
build() {
    local tool=$1 case=$2
    shift 2
    if [ "$tool" = kiln ]; then
        "$TIME" -o "$work/rss" -f %M "$KILN" --root "$work/kiln-store" build --executor=proot \
            --build-context "debian=oci-layout://$layout:bookworm" -t "bench:$case" "$@" \
            "$work/ctx-$case" >"$work/out" 2>&1
    else
        DOCKER_BUILDKIT=1 "$DOCKER" build --progress=plain --network=host -t "bench:$case" "$@" \
            "$work/ctx-$case" >"$work/out" 2>&1
    fi
}

# measure NAME CASE [FLAG...]: RUNS timed builds of CASE by each tool, taking turns so both
# see the same load on a shared machine; sets TOOL_NAME (median ms), TOOL_NAME_spread
# (min..max ms), TOOL_NAME_loop (median ns the exec loop of (c) reported) and, for kiln,
# kiln_NAME_rss (median peak RSS, KiB).
measure() {
    local name=$1 case=$2
    shift 2
    local tool start end
    for tool in "${tools[@]}"; do rm -f "$work/times-$tool" "$work/rss-$tool" "$work/loop-$tool"; done
    for _ in $(seq "$RUNS"); do
        for tool in "${tools[@]}"; do
            start=$(now_ms)
            if ! build "$tool" "$case" "$@"; then
                echo "failed: $tool, case $case" >&2
                tail -20 "$work/out" >&2
                exit 1
            fi
            end=$(now_ms)
            echo $((end - start)) >>"$work/times-$tool"
            if [ "$tool" = kiln ]; then tail -1 "$work/rss" >>"$work/rss-kiln"; fi
            grep -o 'exec-loop-ns [0-9][0-9]*' "$work/out" | tail -1 | cut -d' ' -f2 >>"$work/loop-$tool" || true
        done
    done
    local sorted
    for tool in "${tools[@]}"; do
        sorted=$(sort -n "$work/times-$tool")
        printf -v "${tool}_${name}" '%s' "$(median <<<"$sorted")"
        printf -v "${tool}_${name}_spread" '%s..%s' "$(head -1 <<<"$sorted")" "$(tail -1 <<<"$sorted")"
        if [ -s "$work/loop-$tool" ]; then
            printf -v "${tool}_${name}_loop" '%s' "$(median <"$work/loop-$tool")"
        fi
    done
    if [ -f "$work/rss-kiln" ]; then
        printf -v "kiln_${name}_rss" '%s' "$(median <"$work/rss-kiln")"
    fi
}

# first TOOL: one unmeasured build of (a1), timed, which puts the base in the tool's store.
first() {
    local start end
    start=$(now_ms)
    if ! build "$1" a1; then
        echo "failed: the first $1 build" >&2
        tail -20 "$work/out" >&2
        exit 1
    fi
    end=$(now_ms)
    printf -v "${1}_first" '%s' $((end - start))
}

tools=()
if want buildkit; then
    droot="$work/docker"
    mkdir -p "$droot"
    dockerd --data-root "$droot/data" --exec-root "$droot/exec" --pidfile "$droot/dockerd.pid" \
        --host "unix://$droot/docker.sock" --storage-driver vfs --iptables=false --bridge=none \
        >"$droot/dockerd.log" 2>&1 &
    dockerd_pid=$!
    export DOCKER_HOST="unix://$droot/docker.sock"
    for _ in $(seq 100); do
        "$DOCKER" info >/dev/null 2>&1 && break
        sleep 0.2
    done
    if ! "$DOCKER" info >/dev/null 2>&1; then
        echo "BuildKit: dockerd did not start here (its log below)" >&2
        tail -5 "$droot/dockerd.log" >&2
        exit 1
    fi
    start=$(now_ms)
    skopeo copy -q "oci:$layout:bookworm" "docker-archive:$work/debian.tar:debian:latest"
    "$DOCKER" load -q -i "$work/debian.tar" >/dev/null
    rm -f "$work/debian.tar"
    load_ms=$(($(now_ms) - start))
    first buildkit
    # A base BuildKit resolved against a registry would not be the one kiln builds on.
    if grep -q 'resolve docker.io' "$work/out"; then
        echo "BuildKit resolved FROM debian against a registry, not the loaded image:" >&2
        grep 'resolve docker.io' "$work/out" >&2
        exit 1
    fi
    tools+=(buildkit)
fi
if want kiln; then
    first kiln
    tools+=(kiln)
fi

measure a a --no-cache
measure a1 a1 --no-cache
measure b b --no-cache
measure c c --no-cache
for tool in "${tools[@]}"; do build "$tool" a; done # the cache the no-change rebuilds find
measure d a

# --- the figures -------------------------------------------------------------------------
get() { local v="${1}_${2}${3:-}"; echo "${!v:--}"; }
mb() { awk -v k="$1" 'BEGIN {printf "%.1f MB", k / 1024}'; }
row() { # row LABEL KILN BUILDKIT [RATIO]
    printf '%-36s %-22s %-22s %s\n' "$@"
}
cell() { local m; m=$(get "$1" "$2"); [ "$m" = - ] && echo - || echo "$m ($(get "$1" "$2" _spread))"; }
both() { [ "$(get kiln "$1")" != - ] && [ "$(get buildkit "$1")" != - ]; }
line() { # line LABEL NAME: a case's medians (spreads) and the ratio when both tools ran
    local r=""
    both "$2" && r=$(ratio "$(get kiln "$2")" "$(get buildkit "$2")")
    row "$1" "$(cell kiln "$2")" "$(cell buildkit "$2")" "$r"
}
# The marginal cost of a step, and of an exec inside one (as the loop timed itself).
for tool in "${tools[@]}"; do
    printf -v "${tool}_step" '%s' $((($(get "$tool" a) - $(get "$tool" a1)) / 9))
    printf -v "${tool}_exec" '%s' "$(awk -v ns="$(get "$tool" c _loop)" 'BEGIN {printf "%.2f", ns / 500 / 1e6}')"
done

echo "base: minbase bookworm, $(du -sm "$layout" | cut -f1) MB layout; $RUNS runs each, median (min..max) ms; load average $(cut -d' ' -f1-3 /proc/loadavg)"
want kiln && echo "kiln first build (imports the base into its store): $(get kiln first) ms"
want buildkit && echo "BuildKit: skopeo + docker load of the base $load_ms ms, first build $(get buildkit first) ms (vfs storage)"
row "case" "kiln (proot)" "BuildKit" "kiln/BuildKit"
line "a) 10 x RUN echo, --no-cache" a
line "   1 x RUN echo, --no-cache" a1
r=""
both step && r=$(ratio "$(get kiln step)" "$(get buildkit step)")
row "   ms per step: (a - 1 step) / 9" "$(get kiln step)" "$(get buildkit step)" "$r"
line "b) apt-get install hello (network)" b
line "c) 500 x /bin/true in one RUN" c
r=""
both exec && r=$(ratio "$(get kiln exec)" "$(get buildkit exec)")
row "   ms per exec, timed in the step" "$(get kiln exec)" "$(get buildkit exec)" "$r"
line "d) no-change rebuild of (a)" d
if want kiln; then
    echo "kiln peak RSS (median): a $(mb "$kiln_a_rss"), b $(mb "$kiln_b_rss"), c $(mb "$kiln_c_rss"), d $(mb "$kiln_d_rss")"
fi
if want buildkit; then
    echo "dockerd peak RSS over the run (VmHWM, not counting containerd and runc): $(awk '/VmHWM/ {printf "%.1f MB", $2 / 1024}' "/proc/$dockerd_pid/status")"
fi
