#! status=0 compare=dash
printf 'v1.2.3\n' > VERSION
version=$(cat VERSION)
echo "version is ${version#v}"
echo "lines: $(wc -l < VERSION)"
