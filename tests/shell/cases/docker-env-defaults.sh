#! status=0 compare=dash
: "${PREFIX:=usr/local}"
VERSION=${VERSION:-1.4.2}
mkdir -p "$PREFIX/share/app-$VERSION"
echo "installed to $PREFIX/share/app-$VERSION"
ls usr/local/share
