#! status=0 compare=dash
x=val
echo "${x}ue $x" "${x}_suffix" "$x_suffix."
