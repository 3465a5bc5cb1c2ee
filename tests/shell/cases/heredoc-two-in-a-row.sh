#! status=0 compare=dash
cat <<ONE && cat <<TWO
first doc
ONE
second doc
TWO
echo after
