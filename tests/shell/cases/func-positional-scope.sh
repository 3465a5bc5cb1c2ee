#! status=0 compare=dash
f() {
  echo "in f: $# $*"
  set -- changed
  echo "in f after set: $*"
}
set -- a b c
f x y
echo "outside: $# $*"
