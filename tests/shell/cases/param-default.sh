#! status=0 compare=dash
unset u
e=
s=set
echo "1:${u:-dflt} 2:${u-dflt} 3:${e:-dflt} 4:${e-dflt}x 5:${s:-dflt} 6:${s-dflt}"
echo "u still unset: ${u-yes}"
