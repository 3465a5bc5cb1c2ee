#! status=0 compare=dash
(exit 4)
echo "subshell=$?"
( (exit 6) ; echo "inner=$?"; exit 2)
echo "outer=$?"
