;; healthcheck: the probe HEALTHCHECK runs. Prints "healthy" and exits 0, which a container
;; runtime reads as healthy (1, unhealthy, if stdout cannot be written).
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit"
    (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  ;; At 0, one iovec { buf = 16, len = 8 }; at 8, the count fd_write returns; at 16, the text.
  (data (i32.const 0) "\10\00\00\00\08\00\00\00")
  (data (i32.const 16) "healthy\n")
  (func (export "_start")
    (if (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))
      (then (call $proc_exit (i32.const 1))))
    (call $proc_exit (i32.const 0)))
)
