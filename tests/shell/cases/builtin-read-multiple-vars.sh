#! status=0 compare=dash
echo "one two three four five" > f
read a b c < f
echo "a=$a b=$b c=$c"
read a b c d e f g < f
echo "f=[$f] g=[$g]"
echo "root:x:0:0:Super User:/root" > passwd
IFS=: read user pw uid gid gecos home < passwd
echo "$user $uid $gecos $home"
