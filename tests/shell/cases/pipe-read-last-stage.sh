#! status=0 compare=dash
# like dash and bash, every stage of a pipeline runs in a subshell
v=unset
echo hello | read v
echo "v=$v"
