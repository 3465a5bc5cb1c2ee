#! status=0 compare=dash
while false; do :; done
echo "no-iterations=$?"
i=0
while [ $i -lt 2 ]; do i=$((i+1)); (exit 9); done
echo "last-body=$?"
