#! status=0 compare=dash
f() { echo one; }
f
f() { echo two; }
f
unset -f f
f 2>/dev/null
echo "status=$?"
