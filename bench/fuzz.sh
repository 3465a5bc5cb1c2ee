#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 300) with a nightly toolchain and
# prints, per target, the runs made, the corpus size and whether it crashed. Crashes are left
# in fuzz/artifacts/<target>/ to become regression tests. An input that takes longer than
# TIMEOUT_EACH seconds (default 20) counts as a crash too (a `timeout-` artifact): every
# target reads untrusted input and must stay fast. fuzz/seeds/<target>/, when there is one,
# is read as a second corpus: a start the fuzzer would take long to find (valid tar headers,
# image documents whose digests match).
#
#   bench/fuzz.sh                 # every target, 300 s each
#   SECONDS_EACH=3600 bench/fuzz.sh earthfile
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${SECONDS_EACH:-300}
timeout=${TIMEOUT_EACH:-20}
command -v cargo-fuzz >/dev/null || { echo "needs cargo-fuzz (cargo install cargo-fuzz) and a nightly toolchain" >&2; exit 1; }
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)

status=0
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    corpora=("corpus/$target")
    [ -d "seeds/$target" ] && corpora+=("seeds/$target")
    log=$(mktemp)
    if cargo +nightly fuzz run -O "$target" "${corpora[@]}" -- -max_total_time="$seconds" -timeout="$timeout" \
        -print_final_stats=1 >"$log" 2>&1; then
        verdict="no crash"
    else
        verdict="CRASHED (see fuzz/artifacts/$target)"
        status=1
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    files=$(find "corpus/$target" -type f | wc -l)
    printf '%-12s %ss: %s runs, corpus %s files, %s\n' "$target" "$seconds" "${runs:-?}" "$files" "$verdict"
    rm -f "$log"
done
exit $status
