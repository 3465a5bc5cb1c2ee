#! status=0 compare=dash
x=$(case b in (a) echo A ;; (b) echo B ;; esac)
echo "$x"
n=$(case "12x" in (''|*[!0-9]*) echo no ;; (*) echo yes ;; esac)
echo "$n"
