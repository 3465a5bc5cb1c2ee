#! status=0 compare=dash
files=$(printf 'a b\nc\n')
set -- $files
echo "unquoted: $#"
set -- "$files"
echo "quoted: $#"
