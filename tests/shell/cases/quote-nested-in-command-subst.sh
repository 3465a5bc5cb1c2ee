#! status=0 compare=dash
x="outer value"
y="$(printf '%s' "inner $(printf '%s' "$x")")"
printf '[%s]\n' "$y"
printf '[%s]\n' "$(echo "a  b")"
printf '[%s]\n' $(echo "a  b")
