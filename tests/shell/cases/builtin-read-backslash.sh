#! status=0 compare=dash
printf '%s\n' 'a\b c\\d' > f
read v < f
printf '%s\n' "$v"
read -r v < f
printf '%s\n' "$v"
printf '%s\n' 'joined \' 'next line' > cont
read v < cont
printf '%s\n' "$v"
