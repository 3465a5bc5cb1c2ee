#! status=0 compare=dash
KILN_TEST_PREFIX=for-child sh -c 'echo "child sees [$KILN_TEST_PREFIX]"'
echo "parent sees [${KILN_TEST_PREFIX-unset}]"
KILN_TEST_PREFIX=via-env printenv | sort | while IFS= read -r line; do
  case $line in KILN_TEST_PREFIX=*) echo "env shows $line" ;; esac
done
