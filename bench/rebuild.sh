#!/usr/bin/env bash
# Rebuild times with the build cache, side by side in one run:
#
# 1. kiln, the largest example (examples/healthcheck: three stages on the toolbox image):
#    a rebuild with nothing changed (target <= 100 ms wall), and a rebuild after one source
#    file changed (only the steps after its COPY run again).
# 2. A COPY-only Dockerfile (2,000 small files): kiln's no-change and one-edit rebuilds, and,
#    when dockerd is on the machine (Debian's docker.io), BuildKit's through `docker build`
#    on a dockerd this script starts (vfs storage, no iptables, no bridge) and stops.
#
# Prints the median of RUNS (default 7) of each, and kiln/BuildKit ratios.
#
#   bench/rebuild.sh
#   RUNS=11 bench/rebuild.sh
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-7}
cargo build --release --locked --quiet -p kiln
KILN="$PWD/target/release/kiln"

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
# time_ms CMD...: wall milliseconds of one run of CMD (its output discarded).
time_ms() {
    local start end
    start=$(now_ms)
    if ! "$@" >/dev/null 2>&1; then
        echo "failed: $*" >&2
        exit 1
    fi
    end=$(now_ms)
    echo $((end - start))
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'; }

# --- 1. the largest example --------------------------------------------------------------
store="$work/store"
KILN="$KILN" scripts/toolbox --root "$store" -q >/dev/null
example="$work/healthcheck"
cp -r examples/healthcheck "$example"
"$KILN" --root "$store" build -q -t bench:healthcheck "$example" >/dev/null

nochange=()
for _ in $(seq "$RUNS"); do
    nochange+=("$(time_ms "$KILN" --root "$store" build -q -t bench:healthcheck "$example")")
done
edit=()
for i in $(seq "$RUNS"); do
    # A real edit each time: a comment line with a new number.
    printf ';; edit %s\n' "$i" >> "$example/src/app.wat"
    edit+=("$(time_ms "$KILN" --root "$store" build -q -t bench:healthcheck "$example")")
done
example_nochange=$(printf '%s\n' "${nochange[@]}" | median)
example_edit=$(printf '%s\n' "${edit[@]}" | median)
echo "kiln    examples/healthcheck  no-change rebuild: ${example_nochange} ms   (target <= 100 ms)"
echo "kiln    examples/healthcheck  rebuild after one source edit: ${example_edit} ms"

# --- 2. COPY-only, kiln and BuildKit -----------------------------------------------------
ctx="$work/copy"
mkdir -p "$ctx"
python3 - "$ctx" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(7)
for i in range(2000):
    d = os.path.join(root, "src", f"pkg{i % 50}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"file{i}.txt"), "wb") as f:
        f.write(bytes(rng.getrandbits(8) for _ in range(rng.randint(100, 4000))))
with open(os.path.join(root, "deps.txt"), "w") as f:
    f.write("dependencies\n")
PY
printf 'FROM scratch\nCOPY deps.txt /app/\nCOPY src /app/src\n' > "$ctx/Dockerfile"

measure() { # measure NAME BUILD-COMMAND...: no-change and one-edit medians into NAME_nochange / NAME_edit
    local name=$1
    shift
    "$@" >/dev/null 2>&1
    local a=() b=()
    for _ in $(seq "$RUNS"); do a+=("$(time_ms "$@")"); done
    for i in $(seq "$RUNS"); do
        printf 'edit %s\n' "$i" >> "$ctx/src/pkg0/file0.txt"
        b+=("$(time_ms "$@")")
    done
    printf -v "${name}_nochange" '%s' "$(printf '%s\n' "${a[@]}" | median)"
    printf -v "${name}_edit" '%s' "$(printf '%s\n' "${b[@]}" | median)"
}

measure kiln "$KILN" --root "$work/copy-store" build -q -t bench:copy "$ctx"
echo "kiln    COPY-only (2,000 files) no-change rebuild: ${kiln_nochange} ms, after one edit: ${kiln_edit} ms"

# Debian's docker.io client drives its dockerd's built-in BuildKit; a newer client alone wants
# the buildx plugin, so prefer the one that came with dockerd.
DOCKER=$(command -v /usr/bin/docker || command -v docker || true)
if command -v dockerd >/dev/null && [ -n "$DOCKER" ]; then
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
    if "$DOCKER" info >/dev/null 2>&1; then
        export DOCKER_BUILDKIT=1
        if ! "$DOCKER" build -q -t bench:copy "$ctx" >"$droot/first-build.log" 2>&1; then
            echo "BuildKit: docker build failed here; no comparison"
            tail -5 "$droot/first-build.log"
            exit 0
        fi
        measure buildkit "$DOCKER" build -q -t bench:copy "$ctx"
        echo "BuildKit COPY-only (2,000 files) no-change rebuild: ${buildkit_nochange} ms, after one edit: ${buildkit_edit} ms"
        echo "ratio kiln/BuildKit: no-change $(ratio "$kiln_nochange" "$buildkit_nochange"), one edit $(ratio "$kiln_edit" "$buildkit_edit")"
    else
        echo "BuildKit: dockerd did not start here (see its log below); no comparison"
        tail -5 "$droot/dockerd.log"
    fi
else
    echo "BuildKit: no dockerd on this machine (apt-get install docker.io); no comparison"
fi
