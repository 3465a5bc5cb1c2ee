#! status=0 compare=dash
mkdir sub
(cd sub && touch made-inside && echo "in ${PWD##*/}")
ls
echo --
ls sub
