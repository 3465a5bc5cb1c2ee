#! status=0 compare=dash
mkdir d
touch empty
printf 'data\n' > full
printf '#!/bin/sh\n' > script
chmod 755 script
chmod 644 full
for p in d empty full script missing; do
  r=
  [ -e $p ] && r="$r e"
  [ -f $p ] && r="$r f"
  [ -d $p ] && r="$r d"
  if [ -f $p ]; then
    [ -s $p ] && r="$r s"
    [ -x $p ] && r="$r x"
  fi
  echo "$p:$r"
done
