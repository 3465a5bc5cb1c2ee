#! status=0 compare=dash
n=10
if [ $((n % 2)) -eq 0 ]; then echo even; fi
total=0
for v in 3 4 5; do total=$((total + v)); done
echo "total=$total"
echo "big: $((1000000 * 1000000))"
