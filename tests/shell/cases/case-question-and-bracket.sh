#! status=0 compare=dash
for w in a ab 7 Q xyz; do
  case $w in
    ?) case $w in
         [a-z]) echo "$w: one lowercase letter" ;;
         [0-9]) echo "$w: one digit" ;;
         *) echo "$w: one other char" ;;
       esac ;;
    ??) echo "$w: two chars" ;;
    *) echo "$w: longer" ;;
  esac
done
