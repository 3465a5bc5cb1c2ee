#! status=0 compare=dash
i=0
while true; do
  i=$((i + 1))
  if [ $i -eq 2 ]; then continue; fi
  if [ $i -gt 4 ]; then break; fi
  echo "i=$i"
done
echo "end i=$i"
