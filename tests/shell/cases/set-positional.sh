#! status=0 compare=dash
set -- a "b c" d
echo "$# $2"
set -- "$@" e
echo "$# $*"
set -- x
echo "$# $1"
set --
echo "$# [${1-none}]"
