#! status=0 compare=dash
case abc in
  a*) echo first ;;
  ab*) echo second ;;
  *) echo third ;;
esac
case multi in
  m*)
    echo line1
    echo line2
    ;;
esac
