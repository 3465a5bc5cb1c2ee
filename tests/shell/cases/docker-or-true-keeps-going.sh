#! status=0 compare=dash
set -e
rm nonexistent-file 2>/dev/null || true
mkdir existing
mkdir existing 2>/dev/null || echo "already exists"
rm -rf existing && echo removed
ls
