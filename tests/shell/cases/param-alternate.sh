#! status=0 compare=dash
unset u
e=
s=x
echo "[${u:+alt}] [${u+alt}] [${e:+alt}] [${e+alt}] [${s:+alt}] [${s+alt}]"
