#! status=0 compare=dash
cat > deps <<EOF
zlib
curl
openssl
curl
zlib
EOF
sort deps | uniq > deps.sorted
echo "$(wc -l < deps.sorted) unique"
cat deps.sorted
