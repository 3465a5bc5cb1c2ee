#! status=0 compare=dash
! false && echo negated-false
! true || echo negated-true
! true
echo "status=$?"
! false
echo "status=$?"
