#! status=0 compare=dash
x=hello
e=
echo "${#x} ${#e}"
y="two words"
echo "${#y}"
set -- a b c d
echo "${#}"
