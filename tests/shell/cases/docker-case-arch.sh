#! status=0 compare=dash
for arch in x86_64 aarch64 armv7l riscv64; do
  case "$arch" in
    x86_64|amd64) goarch=amd64 ;;
    aarch64|arm64) goarch=arm64 ;;
    armv7*) goarch=arm ;;
    *) echo "unsupported: $arch" >&2; goarch=unknown ;;
  esac
  echo "$arch -> $goarch"
done
