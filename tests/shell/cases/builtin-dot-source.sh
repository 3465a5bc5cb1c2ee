#! status=0 compare=dash
cat > lib.sh <<'EOF'
lib_var=from-lib
lib_func() { echo "lib_func says $1"; }
EOF
. ./lib.sh
echo "$lib_var"
lib_func hi
printf 'counter=$((counter + 1))\n' > inc.sh
counter=0
. ./inc.sh
. ./inc.sh
echo "counter=$counter"
