#! status=0 compare=dash known=brush-parser#1052
# brush-parser (the parser kiln's sh uses) ends $( at a case pattern's ) — upstream issue reubeno/brush#1052; the (pattern) form works.
x=$(case b in a) echo A ;; b) echo B ;; esac)
echo "$x"
y=$( (echo sub) )
echo "$y"
