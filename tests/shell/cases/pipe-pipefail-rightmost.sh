#! status=0 compare=bash
# dash 0.5.12 has no pipefail
set -o pipefail
(exit 2) | (exit 3) | true
echo "status=$?"
(exit 2) | true | true
echo "status=$?"
