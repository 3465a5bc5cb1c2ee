#! status=0 compare=bash
# dash 0.5.12 has no pipefail
false | true
echo "without=$?"
set -o pipefail
false | true
echo "with=$?"
true | true
echo "ok=$?"
