#! status=0 compare=dash
{ echo to-out; echo to-err >&2; } > both.txt 2>&1
echo "-- both.txt:"
cat both.txt
{ echo to-out; echo to-err >&2; } 2>&1 > onlyout.txt
echo "-- onlyout.txt:"
cat onlyout.txt
