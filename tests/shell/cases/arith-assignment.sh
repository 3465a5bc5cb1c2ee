#! status=0 compare=dash
i=0
echo $((i = i + 1))
echo $((i += 5))
echo "i=$i"
: $((j = 10))
echo "j=$j"
k=1
while [ $k -le 3 ]; do printf '%s ' $k; k=$((k + 1)); done
echo
