#! status=0 compare=dash
mkdir -p src/pkg && printf 'int main;\n' > src/pkg/main.c \
  && cd src/pkg \
  && for f in *.c; do cp "$f" "${f%.c}.o"; done \
  && ls \
  && cd ../.. \
  && rm -rf src \
  && echo "cleaned"
ls
