#! status=0 compare=dash
set -- "first arg" second
for a; do echo "[$a]"; done
for a
do
  echo "again [$a]"
done
