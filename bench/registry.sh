#!/usr/bin/env bash
# Push and pull through Debian's docker-registry on 127.0.0.1: kiln against skopeo, side by
# side in the same run, on one image of three 16 MiB random layers (incompressible, so the
# time is transfer and hashing, not gzip). Prints the median of RUNS of each and the ratio.
# Each push goes to a fresh repository of a fresh registry, each pull into an empty store
# (kiln) or an empty OCI layout (skopeo), so neither tool can skip a blob.
#
#   bench/registry.sh            # RUNS=5
#   RUNS=9 bench/registry.sh
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-5}
for tool in /usr/bin/docker-registry skopeo; do
    command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install docker-registry skopeo)" >&2; exit 1; }
done
cargo build --release --locked --quiet -p kiln
KILN="$PWD/target/release/kiln"

work=$(mktemp -d)
registry_pid=""
cleanup() { [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# A fresh registry for each push, so that no blob can be mounted from an earlier run's
# repository (both tools would: kiln from what it pushed before, skopeo from its blob cache).
addr=""
start_registry() {
    if [ -n "$registry_pid" ]; then kill "$registry_pid" 2>/dev/null; wait "$registry_pid" 2>/dev/null || true; fi
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    addr="127.0.0.1:$port"
    printf 'version: 0.1\nlog: {level: error, accesslog: {disabled: true}}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: %s, secret: bench}\n' \
        "$work/registry-$port" "$addr" >"$work/registry.yml"
    /usr/bin/docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
    registry_pid=$!
    for _ in $(seq 50); do curl -sf "http://$addr/v2/" >/dev/null && return; sleep 0.1; done
    echo "the registry did not start: $(cat "$work/registry.log")" >&2
    exit 1
}

# The image: three layers of random bytes, built by kiln into a store, also as an OCI layout.
ctx="$work/ctx"
mkdir -p "$ctx"
for n in 0 1 2; do head -c $((16 << 20)) /dev/urandom >"$ctx/blob$n.bin"; done
printf 'FROM scratch\nCOPY blob0.bin /\nCOPY blob1.bin /\nCOPY blob2.bin /\n' >"$ctx/Dockerfile"
"$KILN" --root "$work/source" build -q -t bench:1 -o "type=oci,dest=$work/layout" "$ctx" >/dev/null

seconds() {
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null 2>"$work/last.err" || { echo "failed: $* : $(cat "$work/last.err")" >&2; exit 1; }
    end=$(date +%s.%N)
    echo "$end - $start" | bc
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

kiln_push=() skopeo_push=() kiln_pull=() skopeo_pull=()
for run in $(seq "$RUNS"); do
    start_registry
    kiln_push+=("$(seconds "$KILN" --root "$work/source" --insecure-registry "$addr" push bench:1 "$addr/kiln-$run/bench:1")")
    start_registry
    skopeo_push+=("$(seconds skopeo --insecure-policy copy --dest-tls-verify=false "oci:$work/layout:1" "docker://$addr/kiln-$run/bench:1")")
    rm -rf "$work/pull-kiln" "$work/pull-skopeo"
    kiln_pull+=("$(seconds "$KILN" --root "$work/pull-kiln" --insecure-registry "$addr" pull "$addr/kiln-$run/bench:1")")
    skopeo_pull+=("$(seconds skopeo --insecure-policy copy --src-tls-verify=false "docker://$addr/kiln-$run/bench:1" "oci:$work/pull-skopeo:x")")
done

report() {
    local what=$1 kiln skopeo
    kiln=$(printf '%s\n' "${@:2:$RUNS}" | median)
    skopeo=$(printf '%s\n' "${@:$((RUNS + 2)):$RUNS}" | median)
    printf '%-5s 48 MiB: kiln %.3fs  skopeo %.3fs  kiln/skopeo %.2fx\n' "$what" "$kiln" "$skopeo" "$(echo "$kiln / $skopeo" | bc -l)"
}
echo "registry push and pull, median of $RUNS runs each"
report push "${kiln_push[@]}" "${skopeo_push[@]}"
report pull "${kiln_pull[@]}" "${skopeo_pull[@]}"
