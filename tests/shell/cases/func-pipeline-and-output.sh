#! status=0 compare=dash
upper() { tr a-z A-Z; }
printf 'abc\n' | upper
v=$(upper <<EOF
def
EOF
)
echo "v=$v"
