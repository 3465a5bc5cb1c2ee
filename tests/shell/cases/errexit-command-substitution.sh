#! status=1 compare=dash
set -e
x=$(echo ok)
echo "x=$x"
y=$(false)
echo not-reached
