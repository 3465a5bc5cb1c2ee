#! status=0 compare=dash
touch here
if ! [ -f missing ]; then
  if [ -f here ]; then
    echo nested
  fi
fi
