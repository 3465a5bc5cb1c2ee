#! status=0 compare=dash
command -v echo
command -v cd
command -v printf
myfunc() { :; }
command -v myfunc
command -v no_such_command_xyz
[ $? -ne 0 ] && echo "not found fails"
command -v echo >/dev/null && echo "found echo"
