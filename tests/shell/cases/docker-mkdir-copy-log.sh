#! status=0 compare=dash
echo payload > a
mkdir -p out/bin && cp a out/bin/ && echo done > out/log && cat out/log
ls out/bin
