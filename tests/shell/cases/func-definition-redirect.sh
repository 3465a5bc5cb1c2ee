#! status=0 compare=dash
logit() { echo "log: $1"; } >> log.txt
logit first
logit second
cat log.txt
