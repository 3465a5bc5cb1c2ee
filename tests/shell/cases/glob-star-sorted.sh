#! status=0 compare=dash
touch c.txt a.txt b.txt notes.md
echo *.txt
for f in *; do echo "file $f"; done
