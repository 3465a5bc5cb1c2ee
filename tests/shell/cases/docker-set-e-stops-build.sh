#! status=1 compare=dash
set -e
mkdir -p build
cd build
echo "configuring"
test -f Makefile
echo "building"
