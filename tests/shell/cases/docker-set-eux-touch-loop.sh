#! status=0 compare=dash
set -eux; for f in a b c; do touch "$f.txt"; done; ls
