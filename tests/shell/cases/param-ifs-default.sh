#! status=0 compare=dash
x='  leading   and  trailing  '
set -- $x
echo "$#: $1|$2|$3"
y="tabs	and
newlines"
set -- $y
echo "$#: $*"
