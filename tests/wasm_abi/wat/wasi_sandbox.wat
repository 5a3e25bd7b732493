;; A WASI plugin that tries to leave its sandbox on every event.
;; It tries to open /etc/passwd through the conventional first preopen (fd 3), counts
;; environment variables and arguments, and reads stdin. Under ABI v1 all of these must fail or
;; be empty; it then reacts `continue` and prints to stdout and stderr (captured into the log).
;; If anything leaks it rejects with {"error": "sandbox escaped: <what>"}.
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 8192))
  (data (i32.const 1024) "\91\82\a9\65\76\65\6e\74\54\79\70\65\bb\65\76\65\6e\74\67\61\74\65\77\61\79\2e\65\76\65\6e\74\2e\72\65\63\65\69\76\65\64\a4\74\79\70\65\a4\73\79\6e\63")
  (data (i32.const 1100) "/etc/passwd")
  (data (i32.const 1120) "hello from wasi stdout\n")
  (data (i32.const 1150) "and from stderr\n")
  (data (i32.const 1200) "\81\a5\65\72\72\6f\72\b5\73\61\6e\64\62\6f\78\20\65\73\63\61\70\65\64\3a\20\66\69\6c\65")
  (data (i32.const 1300) "\81\a5\65\72\72\6f\72\b4\73\61\6e\64\62\6f\78\20\65\73\63\61\70\65\64\3a\20\65\6e\76")
  (data (i32.const 1400) "\81\a5\65\72\72\6f\72\b5\73\61\6e\64\62\6f\78\20\65\73\63\61\70\65\64\3a\20\61\72\67\73")
  (data (i32.const 1500) "\81\a5\65\72\72\6f\72\b6\73\61\6e\64\62\6f\78\20\65\73\63\61\70\65\64\3a\20\73\74\64\69\6e")

  (func (export "eventgateway_abi_v1"))
  (func (export "_initialize"))

  (func (export "alloc") (param $size i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $size)))
    (local.get $ptr))

  (func (export "subscriptions") (result i64) (i64.const 4398046511154))

  (func $print (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 600) (local.get $ptr))
    (i32.store (i32.const 604) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 600) (i32.const 1) (i32.const 608))))

  (func (export "react") (param $ptr i32) (param $len i32) (result i64)
    (global.set $heap (i32.const 8192))
    ;; path_open(fd 3, follow symlinks, "/etc/passwd", no oflags, read rights) must fail
    (if (i32.eqz (call $path_open (i32.const 3) (i32.const 1) (i32.const 1100) (i32.const 11)
                   (i32.const 0) (i64.const 2) (i64.const 2) (i32.const 0) (i32.const 700)))
      (then (return (i64.const 5153960755229))))
    ;; no environment variables
    (i32.store (i32.const 720) (i32.const -1))
    (drop (call $environ_sizes_get (i32.const 720) (i32.const 724)))
    (if (i32.ne (i32.load (i32.const 720)) (i32.const 0))
      (then (return (i64.const 5583457484828))))
    ;; no arguments
    (i32.store (i32.const 728) (i32.const -1))
    (drop (call $args_sizes_get (i32.const 728) (i32.const 732)))
    (if (i32.ne (i32.load (i32.const 728)) (i32.const 0))
      (then (return (i64.const 6012954214429))))
    ;; stdin is empty: reading it yields 0 bytes (or fails)
    (i32.store (i32.const 740) (i32.const 2000))
    (i32.store (i32.const 744) (i32.const 64))
    (i32.store (i32.const 748) (i32.const 0))
    (drop (call $fd_read (i32.const 0) (i32.const 740) (i32.const 1) (i32.const 748)))
    (if (i32.ne (i32.load (i32.const 748)) (i32.const 0))
      (then (return (i64.const 6442450944030))))
    (call $print (i32.const 1) (i32.const 1120) (i32.const 23))
    (call $print (i32.const 2) (i32.const 1150) (i32.const 16))
    (i64.const 0))
)
