#! status=0 compare=dash
for i in 1 2 3; do
  echo "entry $i" >> acc.txt
done
cat acc.txt
wc -l < acc.txt
