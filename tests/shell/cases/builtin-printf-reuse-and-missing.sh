#! status=0 compare=dash
printf '%s-' a b c
echo
printf '%s=%s\n' k1 v1 k2 v2 k3
printf '[%s][%d]\n'
printf '%d items\n' 3 4
