#!/usr/bin/env bash
# Wall time and peak RSS of `FROM scratch` + `COPY . /app` over a context of 2,000 small
# files and three 10 MB files: kiln, and buildah (vfs driver, chroot isolation) when it is
# installed, side by side in the same run. Prints the median of RUNS builds each and the
# ratio. Each build starts from an empty store, so neither tool can reuse earlier layers.
#
#   bench/copy-build.sh            # RUNS=5
#   RUNS=9 bench/copy-build.sh
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-5}
cargo build --release --locked --quiet -p kiln
KILN="$PWD/target/release/kiln"
TIME=/usr/bin/time
[ -x "$TIME" ] || { echo "needs GNU time (apt-get install time)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ctx="$work/ctx"
mkdir -p "$ctx"
python3 - "$ctx" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(42)
for i in range(2000):
    d = os.path.join(root, "src", f"pkg{i % 50}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"file{i}.txt"), "wb") as f:
        f.write(bytes(rng.getrandbits(8) for _ in range(rng.randint(100, 4000))))
for n in range(3):
    with open(os.path.join(root, f"blob{n}.bin"), "wb") as f:
        f.write(os.urandom(10 * 1024 * 1024))
PY
printf 'FROM scratch\nCOPY . /app\n' > "$ctx/Dockerfile"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Warm the kiln frontend cache once (a compiled-wasm cache, not a build cache).
"$KILN" --root "$work/warm" build -q "$ctx" >/dev/null

kiln_times=() kiln_rss=() buildah_times=() buildah_rss=()
have_buildah=false
command -v buildah >/dev/null && have_buildah=true
for run in $(seq "$RUNS"); do
    rm -rf "$work/kiln-store" && cp -r "$work/warm" "$work/kiln-store"
    rm -rf "$work/kiln-store/blobs" "$work/kiln-store/index.json"
    read -r t m < <("$TIME" -f '%e %M' -o /dev/stdout "$KILN" --root "$work/kiln-store" build -q -t bench "$ctx" 2>/dev/null | tail -1)
    kiln_times+=("$t") kiln_rss+=("$m")
    if $have_buildah; then
        rm -rf "$work/buildah-root" "$work/buildah-run"
        read -r t m < <("$TIME" -f '%e %M' -o /dev/stdout buildah --root "$work/buildah-root" --runroot "$work/buildah-run" \
            --storage-driver vfs bud --isolation chroot -q -t bench -f "$ctx/Dockerfile" "$ctx" 2>/dev/null | tail -1)
        buildah_times+=("$t") buildah_rss+=("$m")
    fi
done

kt=$(printf '%s\n' "${kiln_times[@]}" | median)
km=$(printf '%s\n' "${kiln_rss[@]}" | median)
echo "context: 2000 small files + 3 x 10 MB; $RUNS runs each, medians"
mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
printf 'kiln    wall %6.2f s   peak RSS %6s MB\n' "$kt" "$(mb "$km")"
if $have_buildah; then
    bt=$(printf '%s\n' "${buildah_times[@]}" | median)
    bm=$(printf '%s\n' "${buildah_rss[@]}" | median)
    printf 'buildah wall %6.2f s   peak RSS %6s MB   (vfs, chroot isolation)\n' "$bt" "$(mb "$bm")"
    printf 'ratio   kiln/buildah wall %sx   (target <= 0.5x; kiln peak RSS target <= 150 MB)\n' \
        "$(awk -v a="$kt" -v b="$bt" 'BEGIN {printf "%.2f", a / b}')"
else
    echo "buildah is not installed: no ratio (apt-get install buildah)"
fi
