#! status=0 compare=dash
f=path/to/archive.tar.gz
echo "${f%.*}"
echo "${f%%.*}"
echo "${f%/*}"
echo "${f%.zip}"
v=1.2.3-rc1
echo "${v%-*}"
