#! status=0 compare=dash
a=abc
e=
[ "$a" = abc ] && echo "="
[ "$a" != xyz ] && echo "!="
[ -z "$e" ] && echo "-z empty"
[ -n "$a" ] && echo "-n nonempty"
[ -z "$a" ] || echo "-z false"
[ "$a" ] && echo "bare nonempty"
[ "$e" ] || echo "bare empty false"
test "$a" = abc && echo "test ="
