#! status=0 compare=dash
set -e
false | true
echo "survived pipeline"
