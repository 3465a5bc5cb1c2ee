#! status=0 compare=dash
for i in 1 2 3; do :; done
echo "i=$i"
