#! status=1 compare=dash
set -e
f() { echo "in f"; false; echo not-reached; }
f
echo not-reached
