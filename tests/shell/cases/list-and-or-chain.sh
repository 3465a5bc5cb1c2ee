#! status=0 compare=dash
false && echo a || echo b
true || echo c && echo d
false || false || echo e
true && false && echo f || echo g
