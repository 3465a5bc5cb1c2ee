#! status=0 compare=dash
x=1
unset x
echo "[${x-unset}]"
export KILN_TEST_GONE=1
unset KILN_TEST_GONE
sh -c 'echo "child [${KILN_TEST_GONE-unset}]"'
unset never_was_set
echo "status=$?"
