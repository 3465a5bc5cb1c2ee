#! status=0 compare=dash
for n in $(seq 3) $(printf 'x y'); do echo "item $n"; done
