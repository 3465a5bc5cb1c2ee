#! status=1 compare=dash
set -e
true && false
echo not-reached
