#! status=0 compare=dash
x=mid
printf '%s\n' 'single'"double $x"unquoted\ end
printf '%s\n' "${x}dle" "$x"dle
