#! status=0 compare=dash
cat > conf.txt <<EOF
a=1
b=2
EOF
cat conf.txt
cat <<EOF | tr a-z A-Z
piped
EOF
