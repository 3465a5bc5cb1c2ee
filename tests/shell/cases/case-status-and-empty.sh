#! status=0 compare=dash
case nothing in a) echo a ;; esac
echo "no-match=$?"
x=
case $x in "") echo "empty string" ;; *) echo "not empty" ;; esac
case y in y) (exit 3) ;; esac
echo "matched=$?"
