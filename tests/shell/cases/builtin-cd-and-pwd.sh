#! status=0 compare=dash
mkdir -p a/b/c
cd a/b
echo "${PWD##*/}"
p=$(pwd)
echo "${p##*/}"
[ "$(pwd)" = "$PWD" ] && echo "pwd matches PWD"
cd c
echo "${PWD##*/}"
cd ../..
echo "${PWD##*/}"
