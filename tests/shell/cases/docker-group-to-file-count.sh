#! status=0 compare=dash
{ echo a; echo b; } > f && wc -l < f
{ echo c; } >> f && wc -l < f
