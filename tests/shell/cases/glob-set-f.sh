#! status=0 compare=dash
touch a.txt
set -f
echo *.txt
set +f
echo *.txt
