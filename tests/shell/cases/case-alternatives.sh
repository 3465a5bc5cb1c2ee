#! status=0 compare=dash
for f in a.tar.gz b.tgz c.zip d.txt; do
  case $f in
    *.tar.gz|*.tgz) echo "$f tarball" ;;
    *.zip | *.jar) echo "$f zip" ;;
    *) echo "$f other" ;;
  esac
done
