#! status=0 compare=dash
for w in '*' x 'a?'; do
  case $w in
    "*") echo "literal star" ;;
    'a?') echo "literal a-question" ;;
    *) echo "anything: $w" ;;
  esac
done
pat='x*'
case xyz in $pat) echo "unquoted variable is a pattern" ;; esac
case xyz in "$pat") echo no ;; *) echo "quoted variable is literal" ;; esac
