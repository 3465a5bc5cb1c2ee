#! status=0 compare=dash
for a in 1 2 3; do
  for b in 1 2 3; do
    if [ $b -eq 2 ] && [ $a -eq 2 ]; then break 2; fi
    echo "$a.$b"
  done
done
echo out
