#!/bin/sh
# fib's tests, run by the test stage: its output, and its exit status on bad input.
fib=/out/fib.wasm
failed=0

# check NAME EXPECTED ACTUAL
check() {
    if [ "$2" = "$3" ]; then
        echo "ok   $1"
    else
        echo "FAIL $1: expected '$2', got '$3'"
        failed=1
    fi
}

check "first ten" "1 1 2 3 5 8 13 21 34 55" "$($fib)"
check "first one" "1" "$($fib 1)"
check "the 90th" "2880067194370816120" "$($fib 90 | tr ' ' '\n' | tail -n 1)"
$fib 0 2>/dev/null
check "fib 0 is a usage error" 2 "$?"
$fib ten 2>/dev/null
check "fib ten is a usage error" 2 "$?"
exit $failed
