#! status=0 compare=dash
f() {
  first=$1
  shift
  echo "first=$first rest=$* count=$#"
}
f a b c
set -- 1 2 3 4
shift 2
echo "$*"
shift 0
echo "$*"
