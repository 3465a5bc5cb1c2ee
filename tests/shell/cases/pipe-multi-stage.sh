#! status=0 compare=dash
printf 'b\na\nb\nc\na\n' | sort | uniq | tr a-z A-Z | head -n 2
