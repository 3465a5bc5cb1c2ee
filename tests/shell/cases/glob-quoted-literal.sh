#! status=0 compare=dash
touch one two
echo "*"
echo '*'
echo \*
x='*'
echo "$x"
echo $x
