#! status=0 compare=dash
x=1
{ x=2; y=3; }
echo "$x $y"
