#! status=0 compare=dash
for w in alpha beta gamma; do
  echo "word $w"
done
