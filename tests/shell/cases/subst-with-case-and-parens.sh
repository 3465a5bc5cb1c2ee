#! status=0 compare=dash
x=$(case b in a) echo A ;; b) echo B ;; esac)
echo "$x"
y=$( (echo sub) )
echo "$y"
