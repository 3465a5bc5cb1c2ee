#! status=0 compare=dash
unset a b
c=
d=
: ${a:=one} ${b=two} ${c:=three} ${d=four}
echo "a=$a b=$b c=$c d=[$d]"
echo "${a:=ignored}"
