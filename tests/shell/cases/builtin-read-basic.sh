#! status=0 compare=dash
printf 'hello world\n' > f
read line < f
echo "[$line]"
printf '  padded  \n' > g
read line < g
echo "[$line]"
IFS= read -r line < g
echo "[$line]"
