#! status=1 compare=dash
echo before
false
exit
