#! status=0 compare=dash
while IFS=: read -r name uid home; do
  mkdir -p "home/$name"
  printf '%s:%s:%s\n' "$name" "$uid" "$home" >> passwd
done <<'EOF'
app:1000:/home/app
worker:1001:/home/worker
EOF
ls home
cat passwd
