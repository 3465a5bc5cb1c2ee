#! status=0 compare=dash
v=abc123def
echo "${v%%[0-9]*}"
echo "${v##*[0-9]}"
echo "${v#?}"
echo "${v%???}"
star='a*b'
echo "${star#"a*"}"
echo "${star#a\*}"
p='*'
s2='*x'
echo "[${s2##$p}] [${s2#"$p"}] [${star#"$p"}]"
