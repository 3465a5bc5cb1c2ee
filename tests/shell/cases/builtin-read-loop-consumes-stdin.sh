#! status=0 compare=dash
printf '1\n2\n3\n4\n' > nums
{
  read first
  echo "first: $first"
  while read n; do echo "rest: $n"; done
} < nums
