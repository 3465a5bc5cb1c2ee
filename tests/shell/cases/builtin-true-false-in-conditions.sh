#! status=0 compare=dash
while true; do echo once; break; done
until false; do echo once-more; break; done
if :; then echo colon-true; fi
false || true
echo "status=$?"
