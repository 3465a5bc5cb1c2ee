#! status=5 compare=dash
echo visible
exec > captured.txt
echo into-file
echo also-into-file
[ "$(cat captured.txt)" = "into-file
also-into-file" ] && exit 5
exit 1
