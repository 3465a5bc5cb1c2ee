#! status=2 compare=dash
set -u
echo before
echo "$not_defined_anywhere"
echo not-reached
