#! status=0 compare=dash
# -x is left out: WASI reports no permission bits, and the sandbox has no chmod.
mkdir d
touch empty
printf 'data\n' > full
printf '#!/bin/sh\n' > script
for p in d empty full script missing; do
  r=
  [ -e $p ] && r="$r e"
  [ -f $p ] && r="$r f"
  [ -d $p ] && r="$r d"
  if [ -f $p ]; then
    [ -s $p ] && r="$r s"
  fi
  echo "$p:$r"
done
