#! status=0 compare=dash
echo hidden > /dev/null
echo err-hidden 2>/dev/null >&2
cat /dev/null
echo visible
