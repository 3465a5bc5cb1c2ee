#! status=0 compare=dash
! printf 'x\n' | tr x y
echo "status=$?"
! true | false
echo "status=$?"
