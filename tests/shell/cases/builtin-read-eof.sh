#! status=0 compare=dash
read v < /dev/null
echo "status=$?"
printf 'no-trailing-newline' > f
read v < f
echo "status=$? v=$v"
printf 'a\nb' > g
while read l || [ -n "$l" ]; do echo "line $l"; done < g
