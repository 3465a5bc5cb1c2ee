#! status=0 compare=dash
for w in start stop other; do
  case $w in
    start) echo "starting" ;;
    stop) echo "stopping" ;;
    *) echo "unknown: $w" ;;
  esac
done
