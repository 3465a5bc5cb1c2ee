#! status=0 compare=dash
printf '%s|%d|%5s|%-5s|%x|%o|%c|%%\n' str 42 ab ab 255 8 xyz
printf '%05d|%-4d|%3d|\n' 42 7 1234
printf 'a\tb\n'
printf '%s\n' "no format chars"
printf 'no newline'
printf '\n'
