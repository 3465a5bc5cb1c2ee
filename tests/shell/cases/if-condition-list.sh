#! status=0 compare=dash
if false; true; then echo last-counts; fi
if true && false; then echo no; else echo and-failed; fi
if printf 'abc\n' | tr a x >/dev/null; then echo pipeline-ok; fi
