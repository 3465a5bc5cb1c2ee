#! status=0 compare=dash
cmd='echo evaluated'
eval "$cmd"
name=dynamic
eval "$name=assigned"
echo "$dynamic"
eval 'x=1; y=2'
echo "$x $y"
ref=dynamic
eval "echo \"indirect: \$$ref\""
eval "false"
echo "status=$?"
