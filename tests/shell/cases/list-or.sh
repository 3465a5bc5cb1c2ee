#! status=0 compare=dash
false || echo fallback
true || echo never
echo "status=$?"
