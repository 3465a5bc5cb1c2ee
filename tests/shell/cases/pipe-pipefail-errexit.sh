#! status=1 compare=bash
# dash 0.5.12 has no pipefail
set -e -o pipefail
printf 'x\n' | cat
false | cat
echo not-reached
