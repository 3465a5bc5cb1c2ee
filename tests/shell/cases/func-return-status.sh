#! status=0 compare=dash
ok() { return 0; }
bad() { return 3; }
last() { false; }
noarg() { (exit 4); return; }
ok; echo "ok=$?"
bad; echo "bad=$?"
last; echo "last=$?"
noarg; echo "noarg=$?"
if bad; then echo no; else echo "bad is false"; fi
