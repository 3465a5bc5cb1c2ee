#! status=0 compare=dash
name=result
echo data > "$name.txt"
mkdir dir
echo nested > dir/"$name"
cat result.txt dir/result
