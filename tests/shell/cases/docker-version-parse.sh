#! status=0 compare=dash
TAG=v2.15.3
ver=${TAG#v}
major=${ver%%.*}
rest=${ver#*.}
minor=${rest%%.*}
patch=${ver##*.}
echo "major=$major minor=$minor patch=$patch"
if [ "$major" -ge 2 ] && [ "$minor" -gt 10 ]; then echo "new enough"; fi
