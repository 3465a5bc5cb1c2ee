#! status=0 compare=dash
echo first > f.txt
echo second >> f.txt
cat f.txt
echo replaced > f.txt
cat f.txt
