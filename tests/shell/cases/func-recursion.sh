#! status=0 compare=dash
fact() {
  if [ "$1" -le 1 ]; then
    echo 1
  else
    echo $(( $1 * $(fact $(($1 - 1))) ))
  fi
}
fact 5
countdown() {
  [ "$1" -eq 0 ] && return
  printf '%s ' "$1"
  countdown $(($1 - 1))
}
countdown 4
echo
