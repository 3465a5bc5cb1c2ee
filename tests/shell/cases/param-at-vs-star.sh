#! status=0 compare=dash
show() { printf '<%s>' "$@"; echo; }
set -- "a b" c
show "$@"
show "$*"
show $@
show $*
IFS=,
show "$*"
IFS=' '
set --
show "$@" end
