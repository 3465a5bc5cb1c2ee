#! status=0 compare=dash
true | true | (exit 3)
echo "pipeline=$?"
! true
echo "not-true=$?"
! (exit 3)
echo "not-3=$?"
