#! status=0 compare=dash
f=path/to/archive.tar.gz
echo "${f#*/}"
echo "${f##*/}"
echo "${f#*.}"
echo "${f##*.}"
echo "${f#nomatch}"
