#! status=0 compare=dash
yes | head -n 3
yes abc | head -n 2
