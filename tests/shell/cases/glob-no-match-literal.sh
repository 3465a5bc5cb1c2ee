#! status=0 compare=dash
echo *.none
set -- *.none
echo "$# [$1]"
