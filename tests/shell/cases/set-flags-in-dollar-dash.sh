#! status=0 compare=dash
set -e
case $- in *e*) echo "e on" ;; *) echo "e off" ;; esac
set +e
case $- in *e*) echo "e on" ;; *) echo "e off" ;; esac
set -f
case $- in *f*) echo "f on" ;; esac
