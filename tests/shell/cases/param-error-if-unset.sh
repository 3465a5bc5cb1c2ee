#! status=0 compare=dash
set=here
echo "${set:?not printed}"
(unset v; : "${v:?v is required}"; echo not-reached) 2>/dev/null
[ $? -ne 0 ] && echo "colon-question failed"
(e=; : "${e?only unset fails}"; echo "empty ok with ?") 2>/dev/null
(e=; : "${e:?empty fails with :?}"; echo not-reached) 2>/dev/null
[ $? -ne 0 ] && echo "empty failed with :?"
