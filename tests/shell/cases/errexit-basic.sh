#! status=1 compare=dash
set -e
echo start
false
echo not-reached
