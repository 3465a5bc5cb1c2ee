#! status=5 compare=dash
true
(exit 5)
