#! status=3 compare=dash
true; (exit 3)
