#! status=0 compare=dash
true && echo yes
false && echo no
echo "status=$?"
