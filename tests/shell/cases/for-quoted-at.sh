#! status=0 compare=dash
set -- "a b" "" c
for a in "$@"; do echo "<$a>"; done
echo --
for a in $@; do echo "<$a>"; done
