#! status=0 compare=dash
set -e
mkdir -p opt/app-1.0/bin
echo tool > opt/app-1.0/bin/tool
ln -s app-1.0 opt/app
cat opt/app/bin/tool
[ -d opt/app ] && echo "link resolves to a directory"
mv opt/app-1.0 opt/app-1.0-old
[ -e opt/app ] || echo "link is dangling now"
