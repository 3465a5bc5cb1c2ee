#! status=0 compare=dash
(set -e; echo in-sub; false; echo not-reached)
echo "sub status=$?"
