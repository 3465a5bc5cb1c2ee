#! status=0 compare=dash
echo one; echo two; echo three
