#! status=0 compare=dash
true &&
  echo after-and ||
  echo not-printed
echo one \
  two
