#! status=0 compare=dash
false; echo "false=$?"
true; echo "true=$?"
:; echo "colon=$?"
: ignored arguments $(echo even substituted); echo "colon-args=$?"
