#! status=0 compare=dash
x=outer
echo value | { read x; echo "inside=$x"; }
echo "after=$x"
