#!/bin/sh
# The program's tests: what it prints with no argument, one, and several.
set -eu
greet=$1
[ "$("$greet")" = "hello from kiln" ]
[ "$("$greet" proot)" = "hello from proot" ]
[ "$("$greet" a b | wc -l)" -eq 2 ]
echo "greet: 3 tests passed"
