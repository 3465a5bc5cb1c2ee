#! status=0 compare=dash
set -e
! true
! false
echo survived
