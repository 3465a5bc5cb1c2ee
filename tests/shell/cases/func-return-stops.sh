#! status=0 compare=dash
f() {
  echo before
  return 1
  echo after
}
f
echo "status=$?"
