#! status=0 compare=dash
echo $((0x10)) $((0xff)) $((0X1A)) $((010)) $((0))
