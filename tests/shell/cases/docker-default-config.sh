#! status=0 compare=dash
if [ ! -f config ]; then echo "no config" >&2; printf 'x=1\n' > config; fi; cat config
if [ ! -f config ]; then echo "not again"; fi; cat config
