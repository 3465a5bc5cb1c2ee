#! status=0 compare=dash
echo "$(echo "outer $(echo "inner $(echo deepest)")")"
x=`echo \`echo nested-backtick\``
echo "$x"
