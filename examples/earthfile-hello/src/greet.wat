;; greet [NAME]: prints "hello, NAME!" (NAME is "world" when not given).
;; Exit status 0; 2, with a usage line on stderr, when given more than one argument;
;; 1 when the output cannot be written.
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
  ;; returns, 64.. the texts below, 4096.. the argument pointers, then the strings.
  (data (i32.const 64) "hello, ")
  (data (i32.const 80) "world")
  (data (i32.const 96) "!\n")
  (data (i32.const 112) "usage: greet [NAME]\n")
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

  ;; The length of the NUL-terminated string at ptr.
  (func $strlen (param $ptr i32) (result i32)
    (local $end i32)
    (local.set $end (local.get $ptr))
    (block $done
      (loop $more
        (br_if $done (i32.eqz (i32.load8_u (local.get $end))))
        (local.set $end (i32.add (local.get $end) (i32.const 1)))
        (br $more)))
    (i32.sub (local.get $end) (local.get $ptr)))

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

  (func (export "_start")
    (local $argc i32)
    (local $name i32)
    (local.set $argc (call $load_args))
    (if (i32.gt_u (local.get $argc) (i32.const 2))
      (then
        (call $write (i32.const 2) (i32.const 112) (i32.const 20))
        (call $proc_exit (i32.const 2))))
    (call $write (i32.const 1) (i32.const 64) (i32.const 7))
    (if (i32.eq (local.get $argc) (i32.const 2))
      (then
        ;; argv[1]
        (local.set $name (i32.load (i32.add (global.get $args) (i32.const 4))))
        (call $write (i32.const 1) (local.get $name) (call $strlen (local.get $name))))
      (else (call $write (i32.const 1) (i32.const 80) (i32.const 5))))
    (call $write (i32.const 1) (i32.const 96) (i32.const 2))
    (call $proc_exit (i32.const 0)))
)
