#! status=3 compare=dash
echo before
exit 3
echo not-reached
