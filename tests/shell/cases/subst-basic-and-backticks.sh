#! status=0 compare=dash
a=$(echo dollar-paren)
b=`echo backtick`
echo "$a $b"
echo "today: $(printf '%s' x)-`printf y`"
