#! status=0 compare=dash
set -e
false && echo no
false || echo "or-branch"
true && false || echo "rescued"
echo survived
