#! status=0 compare=dash
for op in -eq -ne -lt -gt -le -ge; do
  r=
  [ 3 $op 5 ] && r="${r}T" || r="${r}F"
  [ 5 $op 5 ] && r="${r}T" || r="${r}F"
  [ 10 $op 9 ] && r="${r}T" || r="${r}F"
  echo "$op $r"
done
[ -1 -lt 0 ] && echo "negative ok"
[ 10 -gt 9 ] && echo "numeric, not string"
