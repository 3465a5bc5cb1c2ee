#! status=0 compare=dash
while read key value; do
  echo "$key => $value"
done <<EOF
alpha 1
beta 2 and more
EOF
