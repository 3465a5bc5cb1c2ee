#! status=0 compare=dash
IFS=' ,'
x='a, b ,c,,d'
set -- $x
IFS=' '
echo "$#"
for a; do printf '[%s]' "$a"; done
echo
