#! status=0 compare=dash
printf 'banana\napple\ncherry\n' | sort
