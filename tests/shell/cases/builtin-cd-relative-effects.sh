#! status=0 compare=dash
mkdir work
cd work
touch inside.txt
cd ..
ls
ls work
cd does-not-exist 2>/dev/null || echo "cd failed"
ls
