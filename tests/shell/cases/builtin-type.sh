#! status=0 compare=none
# type's wording and the external path depend on the shell and the machine; expected output is dash's wording in kiln's sandbox
type echo
type cat
