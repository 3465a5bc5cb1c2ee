#! status=0 compare=dash
set -- one "two three" four
echo "$#"
echo "$1|$2|$3"
echo "$*"
echo "$@"
