#! status=0 compare=dash
printf 'one\ntwo words\nthree\n' > input.txt
while read line; do
  echo "got: $line"
done < input.txt
