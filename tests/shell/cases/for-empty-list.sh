#! status=0 compare=dash
set --
for a in "$@"; do echo "never $a"; done
echo "status=$?"
for a in; do echo never; done
echo end
