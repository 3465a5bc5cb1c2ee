#! status=0 compare=dash
true
echo "$?"
false
echo "$?"
(exit 42)
echo "$?"
echo "$?"
