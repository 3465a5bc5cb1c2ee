#! status=0 compare=dash
seq 10 | while read n; do
  [ $n -gt 3 ] && break
  echo "n=$n"
done
echo done
