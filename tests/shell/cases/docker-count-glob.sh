#! status=0 compare=dash
touch one.txt two.txt three.txt skip.md
ls *.txt | wc -l
set -- *.txt; echo "$# text files"
