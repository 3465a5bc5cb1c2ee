#! status=0 compare=dash
printf 'b\na\nc\n' > f
sort -r f
head -n 1 f
tail -n 1 f
wc -l < f
cut -d: -f2 <<EOF
a:b:c
EOF
basename dir/sub/file.txt .txt
dirname dir/sub/file.txt
expr 3 + 4
seq 2 4
