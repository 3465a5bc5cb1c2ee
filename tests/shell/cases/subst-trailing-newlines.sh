#! status=0 compare=dash
x=$(printf 'line1\n\nline3\n\n\n')
printf '[%s]\n' "$x"
y=$(printf '\n\n')
printf '[%s]\n' "$y"
