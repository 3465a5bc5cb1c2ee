#! status=0 compare=dash
echo "step 1" | tee build.log
echo "step 2" | tee -a build.log > /dev/null
wc -l < build.log
cat build.log
