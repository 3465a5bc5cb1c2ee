#! status=0 compare=dash
set -- "a b" c
args=
for a; do args="$args '$a'"; done
eval "set -- $args"
echo "$#: $1"
eval 'for i in 1 2; do echo "loop $i"; done'
