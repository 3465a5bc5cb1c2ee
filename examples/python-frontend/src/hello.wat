;; hello: prints "hello from a WASI program" and exits 0 (1 if stdout cannot be written).
;; A WASI preview 1 command: it exports its memory and _start.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit"
    (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  ;; At 0, one iovec { buf = 16, len = 26 }; at 8, the count fd_write returns; at 16, the text.
  (data (i32.const 0) "\10\00\00\00\1a\00\00\00")
  (data (i32.const 16) "hello from a WASI program\n")
  (func (export "_start")
    ;; fd_write(fd = 1, iovs = 0, iovs_len = 1, nwritten = 8); 26 bytes go out in one write.
    (if (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))
      (then (call $proc_exit (i32.const 1))))
    (call $proc_exit (i32.const 0)))
)
