#! status=0 compare=dash
false | true
echo "a=$?"
true | false
echo "b=$?"
true | (exit 5)
echo "c=$?"
