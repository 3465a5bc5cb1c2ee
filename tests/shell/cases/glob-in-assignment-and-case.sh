#! status=0 compare=dash
touch file1 file2
x=file*
echo "$x"
echo $x
case file1 in file*) echo case-matches ;; esac
