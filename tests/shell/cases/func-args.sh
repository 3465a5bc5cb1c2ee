#! status=0 compare=dash
greet() {
  echo "count=$# first=$1 second=$2"
  echo "all=$*"
}
greet hello "big world" extra
