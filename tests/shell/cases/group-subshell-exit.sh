#! status=0 compare=dash
(echo before; exit 7; echo after)
echo "status=$?"
