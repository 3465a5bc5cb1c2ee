#! status=0 compare=dash
name=world
cat <<'EOF'
hello $name
$(echo not run) `echo nor this`
back\slash
EOF
cat <<"EOF2"
also $name
EOF2
