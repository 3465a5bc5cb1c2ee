#! status=0 compare=dash
printf 'l1\nl2\nl3\n' > lines
{ read a; read b; } < lines
echo "$a $b"
while read x; do printf '%s,' "$x"; done < lines
echo
