#! status=0 compare=dash
set -e
f() { false; echo "continues inside f"; }
if f; then echo "f succeeded"; fi
f || echo never
echo survived
