#! status=0 compare=dash
> empty.txt
wc -c < empty.txt
>out.txt echo prefix-redirect
cat out.txt
