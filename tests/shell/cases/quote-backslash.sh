#! status=0 compare=dash
printf '%s\n' a\ \ b
printf '%s\n' \$HOME \"q\" \'s\'
printf '%s\n' back\\slash
