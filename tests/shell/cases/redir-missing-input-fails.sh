#! status=0 compare=dash
cat < does-not-exist 2>/dev/null
[ $? -ne 0 ] && echo "command failed"
{ echo never; } < does-not-exist 2>/dev/null
[ $? -ne 0 ] && echo "group failed"
echo continues
