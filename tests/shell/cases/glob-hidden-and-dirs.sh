#! status=0 compare=dash
touch .hidden visible
mkdir -p sub/deeper
touch sub/x.conf sub/y.conf
echo *
echo .h*
echo sub/*.conf
echo */
