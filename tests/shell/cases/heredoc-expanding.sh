#! status=0 compare=dash
name=world
cat <<EOF
hello $name
sum: $((2 + 3))
cmd: $(echo substituted)
escaped: \$name and \\ backslash
EOF
