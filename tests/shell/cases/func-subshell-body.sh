#! status=0 compare=dash
mkdir d
x=1
f() ( cd d; x=2; echo "inside ${PWD##*/} $x" )
f
echo "outside x=$x"
ls
