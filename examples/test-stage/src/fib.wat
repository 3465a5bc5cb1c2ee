;; fib [N]: prints the first N Fibonacci numbers on one line (N is 10 when not given).
;; Exit status 0; 2, with a usage line on stderr, when N is not a number from 1 to 90 or more
;; than one argument is given; 1 when the output cannot be written.
(module
  (import "wasi_snapshot_preview1" "args_sizes_get"
    (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get"
    (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit"
    (func $proc_exit (param i32)))
  (memory (export "memory") 1)

  ;; Memory: 0 argc, 4 size of the argument strings, 8 an iovec, 16 the count fd_write
  ;; returns, 64 the usage line, 512 scratch for one number's digits (written backwards
  ;; from 1024), 1024 the output line (90 numbers of at most 19 digits and a space fit in
  ;; 2 KiB), 4096.. the argument pointers, then the strings.
  (data (i32.const 64) "usage: fib [N], N from 1 to 90\n")
  (global $digits_end i32 (i32.const 1024))
  (global $line i32 (i32.const 1024))
  (global $args i32 (i32.const 4096))

  ;; Write len bytes at ptr to fd, all of them; exit 1 if that fails.
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (block $done
      (loop $more
        (br_if $done (i32.eqz (local.get $len)))
        (i32.store (i32.const 8) (local.get $ptr))
        (i32.store (i32.const 12) (local.get $len))
        (if (call $fd_write (local.get $fd) (i32.const 8) (i32.const 1) (i32.const 16))
          (then (call $proc_exit (i32.const 1))))
        (local.set $ptr (i32.add (local.get $ptr) (i32.load (i32.const 16))))
        (local.set $len (i32.sub (local.get $len) (i32.load (i32.const 16))))
        (br $more))))

  (func $usage
    (call $write (i32.const 2) (i32.const 64) (i32.const 31))
    (call $proc_exit (i32.const 2)))

  ;; Read the arguments into memory at $args (growing it if they do not fit); returns argc.
  (func $load_args (result i32)
    (local $end i32)
    (if (call $args_sizes_get (i32.const 0) (i32.const 4))
      (then (call $proc_exit (i32.const 1))))
    (local.set $end
      (i32.add (global.get $args)
        (i32.add (i32.mul (i32.load (i32.const 0)) (i32.const 4)) (i32.load (i32.const 4)))))
    (if (i32.gt_u (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
      (then
        (if (i32.lt_s
              (memory.grow (i32.sub (i32.shr_u (i32.add (local.get $end) (i32.const 65535)) (i32.const 16))
                                    (memory.size)))
              (i32.const 0))
          (then (call $proc_exit (i32.const 1))))))
    (if (call $args_get (global.get $args)
          (i32.add (global.get $args) (i32.mul (i32.load (i32.const 0)) (i32.const 4))))
      (then (call $proc_exit (i32.const 1))))
    (i32.load (i32.const 0)))

  ;; The NUL-terminated decimal number at ptr, from 1 to 90; anything else is a usage error.
  (func $parse_count (param $ptr i32) (result i32)
    (local $n i32)
    (local $c i32)
    (if (i32.eqz (i32.load8_u (local.get $ptr))) (then (call $usage)))
    (block $done
      (loop $more
        (local.set $c (i32.load8_u (local.get $ptr)))
        (br_if $done (i32.eqz (local.get $c)))
        ;; c - '0' as unsigned is above 9 for anything but a digit.
        (if (i32.gt_u (i32.sub (local.get $c) (i32.const 48)) (i32.const 9)) (then (call $usage)))
        (local.set $n (i32.add (i32.mul (local.get $n) (i32.const 10)) (i32.sub (local.get $c) (i32.const 48))))
        (if (i32.gt_u (local.get $n) (i32.const 90)) (then (call $usage)))
        (local.set $ptr (i32.add (local.get $ptr) (i32.const 1)))
        (br $more)))
    (if (i32.eqz (local.get $n)) (then (call $usage)))
    (local.get $n))

  ;; Write v in decimal at out; returns the address after its last digit.
  (func $decimal (param $v i64) (param $out i32) (result i32)
    (local $start i32)
    (local $len i32)
    (local.set $start (global.get $digits_end))
    (loop $more
      (local.set $start (i32.sub (local.get $start) (i32.const 1)))
      (i64.store8 (local.get $start) (i64.add (i64.const 48) (i64.rem_u (local.get $v) (i64.const 10))))
      (local.set $v (i64.div_u (local.get $v) (i64.const 10)))
      (br_if $more (i64.ne (local.get $v) (i64.const 0))))
    (local.set $len (i32.sub (global.get $digits_end) (local.get $start)))
    (memory.copy (local.get $out) (local.get $start) (local.get $len))
    (i32.add (local.get $out) (local.get $len)))

  (func (export "_start")
    (local $argc i32)
    (local $count i32)
    (local $i i32)
    (local $a i64)
    (local $b i64)
    (local $next i64)
    (local $out i32)
    (local.set $argc (call $load_args))
    (local.set $count (i32.const 10))
    (if (i32.gt_u (local.get $argc) (i32.const 2)) (then (call $usage)))
    (if (i32.eq (local.get $argc) (i32.const 2))
      (then (local.set $count (call $parse_count (i32.load (i32.add (global.get $args) (i32.const 4)))))))
    ;; a, b = 1, 1; print a, then a, b = b, a + b; count times, separated by spaces.
    (local.set $a (i64.const 1))
    (local.set $b (i64.const 1))
    (local.set $out (global.get $line))
    (loop $more
      (if (local.get $i)
        (then
          (i32.store8 (local.get $out) (i32.const 32))
          (local.set $out (i32.add (local.get $out) (i32.const 1)))))
      (local.set $out (call $decimal (local.get $a) (local.get $out)))
      (local.set $next (i64.add (local.get $a) (local.get $b)))
      (local.set $a (local.get $b))
      (local.set $b (local.get $next))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $more (i32.lt_u (local.get $i) (local.get $count))))
    (i32.store8 (local.get $out) (i32.const 10))
    (call $write (i32.const 1) (global.get $line) (i32.add (i32.sub (local.get $out) (global.get $line)) (i32.const 1)))
    (call $proc_exit (i32.const 0)))
)
