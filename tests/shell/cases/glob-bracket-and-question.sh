#! status=0 compare=dash
touch apple banana cherry ab a1 b2
echo [ab]*
echo ??
echo [!ab]*
echo *[0-9]
