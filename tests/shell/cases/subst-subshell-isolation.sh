#! status=0 compare=dash
v=1
out=$(v=2; echo "inner v=$v")
echo "$out; outer v=$v"
