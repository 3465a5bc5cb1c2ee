#! status=2 compare=dash
if ! [ -f requirements.txt ]; then
  echo "error: requirements.txt missing" >&2
  exit 2
fi
echo not-reached
