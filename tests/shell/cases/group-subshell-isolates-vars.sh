#! status=0 compare=dash
x=1
(x=2; y=3; echo "inside $x $y")
echo "outside $x ${y-unset}"
