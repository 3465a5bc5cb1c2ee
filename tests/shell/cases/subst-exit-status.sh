#! status=0 compare=dash
x=$(false)
echo "false=$?"
x=$(exit 3)
echo "exit3=$?"
x=$(true)
echo "true=$?"
x=$(echo out; exit 5)
echo "x=$x status=$?"
