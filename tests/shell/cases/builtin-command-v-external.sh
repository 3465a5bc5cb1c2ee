#! status=0 compare=none
# the path printed for an external command depends on the machine (kiln's sandbox has its utilities in /bin)
command -v cat
command -v ls
