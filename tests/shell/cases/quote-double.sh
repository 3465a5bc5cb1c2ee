#! status=0 compare=dash
x='a   b'
printf '[%s]\n' "$x"
printf '[%s]\n' $x
printf '%s\n' "quote \" dollar \$ backtick \` backslash \\ plain \a"
printf '%s\n' "single 'inside' double"
