#! status=0 compare=dash
if true; then echo yes; fi
if false; then echo no; fi
if [ 1 = 1 ]; then echo eq; else echo ne; fi
