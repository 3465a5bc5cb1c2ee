#! status=0 compare=dash
exec 3>&1
exec > log.txt
echo logged
exec 1>&3 3>&-
echo back
cat log.txt
