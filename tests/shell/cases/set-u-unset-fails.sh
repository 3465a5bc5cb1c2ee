#! status=0 compare=dash
(set -u; echo "$undefined_variable"; echo not-reached) 2>/dev/null
[ $? -ne 0 ] && echo "unset variable failed"
(set -u; echo "${undefined_variable:-default ok}")
(set -u; echo "${undefined_variable-dash ok}")
(set -u; empty=; echo "empty is fine [$empty]")
