#! status=0 compare=dash
line=root:x:0:0::/root
IFS=:
set -- $line
IFS=' '
echo "$#"
echo "1=$1 3=$3 5=[$5] 6=$6"
x=a:b:
IFS=:
set -- $x
IFS=' '
echo "trailing: $#"
