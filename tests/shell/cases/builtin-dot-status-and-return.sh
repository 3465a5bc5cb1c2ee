#! status=0 compare=dash
printf 'echo in-sourced\nreturn 4\necho not-reached\n' > r.sh
. ./r.sh
echo "status=$?"
