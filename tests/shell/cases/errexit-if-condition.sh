#! status=0 compare=dash
set -e
if false; then echo no; fi
if ! true; then echo no; fi
while false; do :; done
until true; do :; done
echo survived
