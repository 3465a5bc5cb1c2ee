#! status=0 compare=dash
set -eu
case $- in *e*u*|*u*e*) echo "both on" ;; esac
set +eu
false
echo "survived false"
echo "[${nothing}]"
