#! status=0 compare=dash
x=value
printf '%s\n' '$x and $(cmd) and "dq" stay literal'
printf '%s\n' 'it'\''s'
