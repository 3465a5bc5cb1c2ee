#! status=0 compare=dash
if false; then echo x; fi
echo "no-branch=$?"
if true; then (exit 6); fi
echo "branch=$?"
if false; then :; else (exit 2); fi
echo "else=$?"
