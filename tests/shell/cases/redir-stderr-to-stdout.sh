#! status=0 compare=dash
{ echo out; echo err >&2; } 2>&1
echo to-null 2>/dev/null 1>&2
echo also-stderr 1>&2 2>&1
