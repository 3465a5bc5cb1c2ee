#! status=0 compare=dash
sh -c 'set -e; mkdir -p opt/tool; echo "#!/bin/sh" > opt/tool/run; echo "created $(cat opt/tool/run)"'
sh -c 'exit 3' || echo "inner shell failed with $?"
