#! status=0 compare=dash
echo() { printf 'wrapped: %s\n' "$*"; }
echo hi
command echo direct
unset -f echo
echo restored
