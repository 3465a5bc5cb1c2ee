#! status=4 compare=dash
{ echo in-group; exit 4; }
echo not-reached
