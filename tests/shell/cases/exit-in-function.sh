#! status=9 compare=dash
f() { echo "in f"; exit 9; }
f
echo not-reached
