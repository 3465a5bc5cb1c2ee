#! status=0 compare=dash
x='a b c'
IFS=
set -- $x
echo "$#"
unset IFS
set -- $x
echo "$#"
