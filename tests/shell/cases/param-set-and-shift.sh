#! status=0 compare=dash
set -- a b c d e
echo "$# $1"
shift
echo "$# $1"
shift 2
echo "$# $*"
set --
echo "$#"
