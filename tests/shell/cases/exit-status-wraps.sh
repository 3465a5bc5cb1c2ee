#! status=0 compare=dash
(exit 255); echo $?
(exit 256); echo $?
(exit 257); echo $?
