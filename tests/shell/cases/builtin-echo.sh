#! status=0 compare=dash
echo plain words here
echo
echo -n no-newline
echo " <- joined"
echo "multiple   spaces kept"
echo multiple   spaces squeezed
