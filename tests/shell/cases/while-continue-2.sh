#! status=0 compare=dash
for a in 1 2 3; do
  for b in 1 2 3; do
    if [ $b -eq 2 ]; then continue 2; fi
    echo "$a.$b"
  done
  echo never
done
