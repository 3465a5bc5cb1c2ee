#! status=0 compare=dash
printf 'c\na\nb\n' > in.txt
sort < in.txt
wc -l < in.txt
read first < in.txt
echo "first=$first"
