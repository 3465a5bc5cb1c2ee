#! status=0 compare=dash
set -x
echo traced
x=$((1 + 1))
echo "x=$x"
set +x
echo untraced
