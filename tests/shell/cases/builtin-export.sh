#! status=0 compare=dash
export KILN_TEST_EXPORTED=visible
KILN_TEST_PLAIN=hidden
sh -c 'echo "exported=[$KILN_TEST_EXPORTED] plain=[$KILN_TEST_PLAIN]"'
export KILN_TEST_PLAIN
sh -c 'echo "after export=[$KILN_TEST_PLAIN]"'
KILN_TEST_LATER=1
export KILN_TEST_LATER
KILN_TEST_LATER=2
sh -c 'echo "later=[$KILN_TEST_LATER]"'
