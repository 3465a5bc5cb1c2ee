#! status=0 compare=dash
[ ! -f nothing ] && echo "not a file"
[ 1 -eq 1 -a 2 -eq 2 ] && echo "-a both"
[ 1 -eq 2 -o 2 -eq 2 ] && echo "-o one"
[ 1 -eq 2 -a 2 -eq 2 ] || echo "-a fails"
[ ! 1 -eq 2 ] && echo "! inverts"
[ 1 -eq 1 ] && [ 2 -eq 2 ] && echo "&& of tests"
[ 5 -gt 3 ]; echo "status=$?"
[ 3 -gt 5 ]; echo "status=$?"
