#! status=0 compare=dash
count() { echo $#; }
count "" ''
empty=
count $empty
count "$empty"
count a"$empty"b
