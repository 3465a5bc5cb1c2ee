#! status=0 compare=dash
set -e
set +e
false
echo "status=$?"
