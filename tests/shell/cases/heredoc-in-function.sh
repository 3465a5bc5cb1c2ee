#! status=0 compare=dash
show() {
  cat <<EOF
arg is $1
EOF
}
show one
show two
