#! status=0 compare=dash
(echo $((1 / 0))) 2>/dev/null
[ $? -ne 0 ] && echo "division by zero failed"
