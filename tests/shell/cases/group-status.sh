#! status=0 compare=dash
{ true; false; }
echo "brace=$?"
(false; true)
echo "paren=$?"
