#! status=0 compare=dash
printf '%b\n' 'tab:\there' 'nl:\nnext'
printf '%s\n' 'tab:\tnot-expanded'
printf 'octal \101\102\n'
printf 'backslash \\ done\n'
