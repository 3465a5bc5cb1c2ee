#! status=0 compare=dash
echo -n abc
echo -n def
