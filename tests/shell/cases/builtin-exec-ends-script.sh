#! status=0 compare=dash
echo before
exec echo replaced
echo not-reached
