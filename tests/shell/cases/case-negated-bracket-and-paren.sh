#! status=0 compare=dash
for w in apple banana; do
  case $w in
    ([!a]*) echo "$w does not start with a" ;;
    (*) echo "$w starts with a" ;;
  esac
done
