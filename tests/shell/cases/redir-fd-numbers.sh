#! status=0 compare=dash
exec 3> fd3.txt
echo via-fd3 >&3
echo again 1>&3
exec 3>&-
cat fd3.txt
exec 4< fd3.txt
read line <&4
exec 4<&-
echo "read: $line"
