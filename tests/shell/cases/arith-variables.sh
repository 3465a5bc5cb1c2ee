#! status=0 compare=dash
a=6
b=4
echo $((a * b)) $(($a + $b)) $((a - b * 2))
unset z
echo $((z + 1))
n=" 12 "
echo $((n + 1))
