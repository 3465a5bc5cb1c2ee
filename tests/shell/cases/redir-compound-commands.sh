#! status=0 compare=dash
{ echo a; echo b; } > group.txt
if true; then echo in-if; fi > if.txt
for i in 1 2 3; do echo "line $i"; done > loop.txt
(echo sub) > sub.txt
cat group.txt if.txt loop.txt sub.txt
