#! status=0 compare=dash
cat <<EOF
EOF
x=v
cat <<EOF
'single $x' "double $x"
EOF
