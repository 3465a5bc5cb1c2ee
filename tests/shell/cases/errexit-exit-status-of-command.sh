#! status=3 compare=dash
set -e
echo start
(exit 3)
echo not-reached
