#! status=0 compare=bash
# dash 0.5.12 has no pipefail
set -o pipefail
set +o pipefail
false | true
echo "status=$?"
