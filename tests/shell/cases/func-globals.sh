#! status=0 compare=dash
x=1
setx() { x=2; newvar=made; }
setx
echo "$x $newvar"
