#!/usr/bin/env bash
# Check the shell corpus against the host's shells.
#
# For every tests/shell/cases/*.sh: read the directive on its first line
# (`#! status=N compare=dash|bash|none`), run the script in a fresh empty
# scratch directory with stdin from /dev/null and a minimal environment,
# and compare its stdout with the matching .out file and its exit status
# with N.  compare=dash runs /usr/bin/dash, compare=bash runs `bash --posix`;
# compare=none cases are run with `bash --posix` as a sanity check only and
# are reported but never counted as failures.
#
# Usage: tests/shell/check-with-host.sh [-v] [case-name-substring...]
set -u

here=$(cd "$(dirname "$0")" && pwd)
cases=$here/cases
verbose=0
if [ "${1-}" = -v ]; then verbose=1; shift; fi

passed=0
failed=0
failures=()
none_total=0
none_diff=()

scratch_root=$(mktemp -d)
trap 'rm -rf "$scratch_root"' EXIT

run_case() { # shell-kind script outfile errfile -> sets rc
    local kind=$1 script=$2 out=$3 err=$4 dir
    dir=$(mktemp -d "$scratch_root/case.XXXXXX")
    local -a cmd
    case $kind in
        dash) cmd=(/usr/bin/dash "$script") ;;
        bash) cmd=(bash --posix "$script") ;;
    esac
    (cd "$dir" && exec env -i PATH="$PATH" LC_ALL=C \
        timeout 20 "${cmd[@]}" </dev/null >"$out" 2>"$err")
    rc=$?
    rm -rf "$dir"
}

for script in "$cases"/*.sh; do
    name=$(basename "$script" .sh)
    if [ $# -gt 0 ]; then
        want=0
        for pat in "$@"; do [[ $name == *"$pat"* ]] && want=1; done
        [ $want = 1 ] || continue
    fi
    expected_out=${script%.sh}.out
    IFS= read -r directive <"$script"
    if [[ $directive =~ ^'#! status='([0-9]+)' compare='(dash|bash|none)( known=[^ ]+)?$ ]]; then
        status=${BASH_REMATCH[1]}
        compare=${BASH_REMATCH[2]}
    else
        failed=$((failed + 1))
        failures+=("$name: bad directive line: $directive")
        continue
    fi
    if [ ! -f "$expected_out" ]; then
        failed=$((failed + 1))
        failures+=("$name: missing $name.out")
        continue
    fi
    kind=$compare
    [ "$kind" = none ] && kind=bash
    out=$scratch_root/$name.stdout
    err=$scratch_root/$name.stderr
    run_case "$kind" "$script" "$out" "$err"
    problem=
    if [ "$rc" != "$status" ]; then
        problem="status $rc, expected $status"
    fi
    if ! cmp -s "$out" "$expected_out"; then
        problem="${problem:+$problem; }stdout differs"
    fi
    if [ "$compare" = none ]; then
        none_total=$((none_total + 1))
        [ -n "$problem" ] && none_diff+=("$name (bash --posix): $problem")
        continue
    fi
    if [ -z "$problem" ]; then
        passed=$((passed + 1))
        [ $verbose = 1 ] && echo "ok   $name ($compare)"
    else
        failed=$((failed + 1))
        failures+=("$name ($compare): $problem")
        if [ $verbose = 1 ]; then
            echo "FAIL $name ($compare): $problem"
            diff -u "$expected_out" "$out" | head -n 40
            echo "--- stderr:"; head -n 10 "$err"
        fi
    fi
done

for o in "$cases"/*.out; do
    [ -f "${o%.out}.sh" ] && continue
    failed=$((failed + 1))
    failures+=("$(basename "$o"): no matching .sh")
done

echo "$passed passed, $failed failed (plus $none_total compare=none cases run with bash --posix for information)"
for f in ${failures[@]+"${failures[@]}"}; do echo "FAILED: $f"; done
for f in ${none_diff[@]+"${none_diff[@]}"}; do echo "note: compare=none case differs on host: $f"; done
[ "$failed" = 0 ]
