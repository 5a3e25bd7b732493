;; The ratelimit example plugin in WebAssembly text. Between the KIT markers: the kv imports block of
;; wasm_abi/pdk/wat/capabilities.wat, the WAT kit (wasm_abi/pdk/wat/kit.wat), then the codes and kv blocks
;; of capabilities.wat, all copied verbatim; the plugin itself is the part after them.
(module
  ;; ==== BEGIN EVENTGATEWAY WAT KIT kv imports v1 ====
  (import "eventgateway" "kv_get" (func $host_kv_get (param i32 i32 i32 i32) (result i32)))
  (import "eventgateway" "kv_set" (func $host_kv_set (param i32 i32 i32 i32 i64) (result i32)))
  (import "eventgateway" "kv_delete" (func $host_kv_delete (param i32 i32) (result i32)))
  (import "eventgateway" "kv_incr" (func $host_kv_incr (param i32 i32 i64 i64 i32) (result i32)))
  (import "eventgateway" "kv_cas" (func $host_kv_cas (param i32 i32 i32 i32 i32 i32 i64) (result i32)))
  ;; ==== END EVENTGATEWAY WAT KIT kv imports v1 ====
  ;; ==== BEGIN EVENTGATEWAY WAT KIT v1 ====
  ;; Copy this block verbatim to the top of your (module ...). It exports everything the host needs
  ;; (memory, the ABI marker, alloc, subscriptions, react, init) and calls three functions YOU define:
  ;;   (func $on_subscriptions (result i64))              ;; return (call $w_end) after writing the array
  ;;   (func $on_init (param $config i32) (result i64))   ;; $config points at the config msgpack value
  ;;   (func $on_react (param $event i32) (result i64))   ;; $event points at the system event map
  ;; Each returns $CONTINUE (i64 0) or a packed (ptr << 32 | len) msgpack reaction built with the writer.
  ;; Memory: bytes 1024..16383 hold string constants (the kit uses 1024..2047, 64 bytes a slot; yours
  ;; start at 2048), the heap starts at 16384. Values are read in place: a "value" is the address of its
  ;; first msgpack byte (0 = absent; lookups on 0 give 0 again, so they chain); strings come back packed
  ;; as (ptr << 32 | len), or -1 when absent / not a string.
  (import "eventgateway" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (func (export "eventgateway_abi_v1"))

  (data (i32.const 1024) "eventType")       ;; 9
  (data (i32.const 1088) "type")            ;; 4
  (data (i32.const 1152) "sync")            ;; 4
  (data (i32.const 1216) "async")           ;; 5
  (data (i32.const 1280) "data")            ;; 4
  (data (i32.const 1344) "event")           ;; 5
  (data (i32.const 1408) "id")              ;; 2
  (data (i32.const 1472) "eventID")         ;; 7
  (data (i32.const 1536) "error")           ;; 5
  (data (i32.const 1600) "status")          ;; 6
  (data (i32.const 1664) "source")          ;; 6

  (global $heap (mut i32) (i32.const 16384))   ;; next free byte
  (global $keep (mut i32) (i32.const 16384))   ;; everything below survives between calls (config)
  (global $reset_pending (mut i32) (i32.const 0))
  (global $end (mut i32) (i32.const 0))        ;; end of the input being read (bounds check)
  (global $wstart (mut i32) (i32.const 0))     ;; writer: start of the buffer being written
  (global $wpos (mut i32) (i32.const 0))       ;; writer: next byte

  ;; ---- memory: a bump allocator; the scratch heap is reset on the first alloc after a call ----
  ;; $grow_to: make memory reach $limit; 0 when memory.grow fails (the host's memory limit).
  (func $grow_to (param $limit i32) (result i32)
    (local $have i32)
    (local.set $have (i32.shl (memory.size) (i32.const 16)))
    (if (i32.le_u (local.get $limit) (local.get $have)) (then (return (i32.const 1))))
    (i32.ge_s
      (memory.grow (i32.shr_u (i32.add (i32.sub (local.get $limit) (local.get $have)) (i32.const 65535))
                              (i32.const 16)))
      (i32.const 0)))
  (func $ensure (param $limit i32)
    (if (i32.eqz (call $grow_to (local.get $limit))) (then unreachable)))
  ;; $bump: $size bytes, 8-aligned; 0 when memory cannot grow.
  (func $bump (param $size i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (if (i32.eqz (call $grow_to (i32.add (local.get $p) (local.get $size)))) (then (return (i32.const 0))))
    (global.set $heap (i32.add (local.get $p) (local.get $size)))
    (local.get $p))
  (func (export "alloc") (param $size i32) (result i32)
    (if (global.get $reset_pending)
      (then (global.set $heap (global.get $keep)) (global.set $reset_pending (i32.const 0))))
    (if (i32.lt_s (local.get $size) (i32.const 0)) (then (return (i32.const 0))))
    (call $bump (local.get $size)))
  (func $leave (param $result i64) (result i64)
    (global.set $reset_pending (i32.const 1))
    (local.get $result))

  ;; ---- exports: the glue around your three functions ----
  (func (export "subscriptions") (result i64)
    (call $leave (call $on_subscriptions)))
  (func (export "init") (param $ptr i32) (param $len i32) (result i64)
    (local $r i64)
    (global.set $end (i32.add (local.get $ptr) (local.get $len)))
    (local.set $r (call $on_init (local.get $ptr)))
    (global.set $keep (global.get $heap))   ;; the config bytes stay readable for the instance's life
    (call $leave (local.get $r)))
  (func (export "react") (param $ptr i32) (param $len i32) (result i64)
    (global.set $end (i32.add (local.get $ptr) (local.get $len)))
    (call $leave (call $on_react (local.get $ptr))))

  ;; ---- msgpack reader ----
  (func $u8 (param $p i32) (result i32) (i32.load8_u (local.get $p)))
  (func $be16 (param $p i32) (result i32)
    (i32.or (i32.shl (i32.load8_u (local.get $p)) (i32.const 8)) (i32.load8_u offset=1 (local.get $p))))
  (func $be32 (param $p i32) (result i32)
    (i32.or (i32.shl (call $be16 (local.get $p)) (i32.const 16)) (call $be16 (i32.add (local.get $p) (i32.const 2)))))
  (func $be64 (param $p i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (call $be32 (local.get $p))) (i64.const 32))
            (i64.extend_i32_u (call $be32 (i32.add (local.get $p) (i32.const 4))))))

  ;; $mp_skip: the address just past the value at $p (any type, nested to any depth, no recursion).
  (func $mp_skip (param $p i32) (result i32)
    (local $todo i64) (local $b i32)
    (local.set $todo (i64.const 1))
    (loop $next
      (if (i32.ge_u (local.get $p) (global.get $end)) (then unreachable))
      (local.set $b (i32.load8_u (local.get $p)))
      (local.set $todo (i64.sub (local.get $todo) (i64.const 1)))
      (block $done
        (if (i32.lt_u (local.get $b) (i32.const 0x80))      ;; positive fixint
          (then (local.set $p (i32.add (local.get $p) (i32.const 1))) (br $done)))
        (if (i32.lt_u (local.get $b) (i32.const 0x90))      ;; fixmap
          (then (local.set $todo (i64.add (local.get $todo) (i64.extend_i32_u (i32.shl (i32.and (local.get $b) (i32.const 15)) (i32.const 1)))))
                (local.set $p (i32.add (local.get $p) (i32.const 1))) (br $done)))
        (if (i32.lt_u (local.get $b) (i32.const 0xa0))      ;; fixarray
          (then (local.set $todo (i64.add (local.get $todo) (i64.extend_i32_u (i32.and (local.get $b) (i32.const 15)))))
                (local.set $p (i32.add (local.get $p) (i32.const 1))) (br $done)))
        (if (i32.lt_u (local.get $b) (i32.const 0xc0))      ;; fixstr
          (then (local.set $p (i32.add (local.get $p) (i32.add (i32.const 1) (i32.and (local.get $b) (i32.const 31))))) (br $done)))
        (if (i32.ge_u (local.get $b) (i32.const 0xe0))      ;; negative fixint
          (then (local.set $p (i32.add (local.get $p) (i32.const 1))) (br $done)))
        (if (i32.eq (local.get $b) (i32.const 0xc1)) (then unreachable))
        (if (i32.le_u (local.get $b) (i32.const 0xc3))      ;; nil, false, true
          (then (local.set $p (i32.add (local.get $p) (i32.const 1))) (br $done)))
        (if (i32.eq (local.get $b) (i32.const 0xc4)) (then (local.set $p (i32.add (local.get $p) (i32.add (i32.const 2) (call $u8 (i32.add (local.get $p) (i32.const 1)))))) (br $done)))
        (if (i32.eq (local.get $b) (i32.const 0xc5)) (then (local.set $p (i32.add (local.get $p) (i32.add (i32.const 3) (call $be16 (i32.add (local.get $p) (i32.const 1)))))) (br $done)))
        (if (i32.eq (local.get $b) (i32.const 0xc6)) (then (local.set $p (i32.add (local.get $p) (i32.add (i32.const 5) (call $be32 (i32.add (local.get $p) (i32.const 1)))))) (br $done)))
        (if (i32.eq (local.get $b) (i32.const 0xc7)) (then (local.set $p (i32.add (local.get $p) (i32.add (i32.const 3) (call $u8 (i32.add (local.get $p) (i32.const 1)))))) (br $done)))
        (if (i32.eq (local.get $b) (i32.const 0xc8)) (then (local.set $p (i32.add (local.get $p) (i32.add (i32.const 4) (call $be16 (i32.add (local.get $p) (i32.const 1)))))) (br $done)))
        (if (i32.eq (local.get $b) (i32.const 0xc9)) (then (local.set $p (i32.add (local.get $p) (i32.add (i32.const 6) (call $be32 (i32.add (local.get $p) (i32.const 1)))))) (br $done)))
        (if (i32.eq (local.get $b) (i32.const 0xca)) (then (local.set $p (i32.add (local.get $p) (i32.const 5))) (br $done)))
        (if (i32.eq (local.get $b) (i32.const 0xcb)) (then (local.set $p (i32.add (local.get $p) (i32.const 9))) (br $done)))
        (if (i32.eq (local.get $b) (i32.const 0xcc)) (then (local.set $p (i32.add (local.get $p) (i32.const 2))) (br $done)))
        (if (i32.eq (local.get $b) (i32.const 0xcd)) (then (local.set $p (i32.add (local.get $p) (i32.const 3))) (br $done)))
        (if (i32.eq (local.get $b) (i32.const 0xce)) (then (local.set $p (i32.add (local.get $p) (i32.const 5))) (br $done)))
        (if (i32.eq (local.get $b) (i32.const 0xcf)) (then (local.set $p (i32.add (local.get $p) (i32.const 9))) (br $done)))
        (if (i32.eq (local.get $b) (i32.const 0xd0)) (then (local.set $p (i32.add (local.get $p) (i32.const 2))) (br $done)))
        (if (i32.eq (local.get $b) (i32.const 0xd1)) (then (local.set $p (i32.add (local.get $p) (i32.const 3))) (br $done)))
        (if (i32.eq (local.get $b) (i32.const 0xd2)) (then (local.set $p (i32.add (local.get $p) (i32.const 5))) (br $done)))
        (if (i32.eq (local.get $b) (i32.const 0xd3)) (then (local.set $p (i32.add (local.get $p) (i32.const 9))) (br $done)))
        (if (i32.eq (local.get $b) (i32.const 0xd4)) (then (local.set $p (i32.add (local.get $p) (i32.const 3))) (br $done)))
        (if (i32.eq (local.get $b) (i32.const 0xd5)) (then (local.set $p (i32.add (local.get $p) (i32.const 4))) (br $done)))
        (if (i32.eq (local.get $b) (i32.const 0xd6)) (then (local.set $p (i32.add (local.get $p) (i32.const 6))) (br $done)))
        (if (i32.eq (local.get $b) (i32.const 0xd7)) (then (local.set $p (i32.add (local.get $p) (i32.const 10))) (br $done)))
        (if (i32.eq (local.get $b) (i32.const 0xd8)) (then (local.set $p (i32.add (local.get $p) (i32.const 18))) (br $done)))
        (if (i32.eq (local.get $b) (i32.const 0xd9)) (then (local.set $p (i32.add (local.get $p) (i32.add (i32.const 2) (call $u8 (i32.add (local.get $p) (i32.const 1)))))) (br $done)))
        (if (i32.eq (local.get $b) (i32.const 0xda)) (then (local.set $p (i32.add (local.get $p) (i32.add (i32.const 3) (call $be16 (i32.add (local.get $p) (i32.const 1)))))) (br $done)))
        (if (i32.eq (local.get $b) (i32.const 0xdb)) (then (local.set $p (i32.add (local.get $p) (i32.add (i32.const 5) (call $be32 (i32.add (local.get $p) (i32.const 1)))))) (br $done)))
        (if (i32.eq (local.get $b) (i32.const 0xdc))
          (then (local.set $todo (i64.add (local.get $todo) (i64.extend_i32_u (call $be16 (i32.add (local.get $p) (i32.const 1))))))
                (local.set $p (i32.add (local.get $p) (i32.const 3))) (br $done)))
        (if (i32.eq (local.get $b) (i32.const 0xdd))
          (then (local.set $todo (i64.add (local.get $todo) (i64.extend_i32_u (call $be32 (i32.add (local.get $p) (i32.const 1))))))
                (local.set $p (i32.add (local.get $p) (i32.const 5))) (br $done)))
        (if (i32.eq (local.get $b) (i32.const 0xde))
          (then (local.set $todo (i64.add (local.get $todo) (i64.shl (i64.extend_i32_u (call $be16 (i32.add (local.get $p) (i32.const 1)))) (i64.const 1))))
                (local.set $p (i32.add (local.get $p) (i32.const 3))) (br $done)))
        ;; 0xdf map32
        (local.set $todo (i64.add (local.get $todo) (i64.shl (i64.extend_i32_u (call $be32 (i32.add (local.get $p) (i32.const 1)))) (i64.const 1))))
        (local.set $p (i32.add (local.get $p) (i32.const 5))))
      (br_if $next (i64.gt_u (local.get $todo) (i64.const 0))))
    (if (i32.gt_u (local.get $p) (global.get $end)) (then unreachable))
    (local.get $p))

  ;; $mp_str: the string at $p packed as (ptr << 32 | len); -1 if it is not a string (fixstr/str8/16/32).
  (func $mp_str (param $p i32) (result i64)
    (local $b i32) (local $data i32) (local $len i32)
    (local.set $b (i32.load8_u (local.get $p)))
    (block $found
      (if (i32.eq (i32.and (local.get $b) (i32.const 0xe0)) (i32.const 0xa0))
        (then (local.set $data (i32.add (local.get $p) (i32.const 1)))
              (local.set $len (i32.and (local.get $b) (i32.const 31))) (br $found)))
      (if (i32.eq (local.get $b) (i32.const 0xd9))
        (then (local.set $data (i32.add (local.get $p) (i32.const 2)))
              (local.set $len (call $u8 (i32.add (local.get $p) (i32.const 1)))) (br $found)))
      (if (i32.eq (local.get $b) (i32.const 0xda))
        (then (local.set $data (i32.add (local.get $p) (i32.const 3)))
              (local.set $len (call $be16 (i32.add (local.get $p) (i32.const 1)))) (br $found)))
      (if (i32.eq (local.get $b) (i32.const 0xdb))
        (then (local.set $data (i32.add (local.get $p) (i32.const 5)))
              (local.set $len (call $be32 (i32.add (local.get $p) (i32.const 1)))) (br $found)))
      (return (i64.const -1)))
    (if (i32.gt_u (i32.add (local.get $data) (local.get $len)) (global.get $end)) (then unreachable))
    (call $pack (local.get $data) (local.get $len)))

  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32)) (i64.extend_i32_u (local.get $len))))
  (func $ptr_of (param $packed i64) (result i32) (i32.wrap_i64 (i64.shr_u (local.get $packed) (i64.const 32))))
  (func $len_of (param $packed i64) (result i32) (i32.wrap_i64 (local.get $packed)))

  ;; $mp_map / $mp_array: the container at $p as (first entry address << 32 | count); -1 if another type.
  (func $mp_map (param $p i32) (result i64)
    (local $b i32)
    (local.set $b (i32.load8_u (local.get $p)))
    (if (i32.eq (i32.and (local.get $b) (i32.const 0xf0)) (i32.const 0x80))
      (then (return (call $pack (i32.add (local.get $p) (i32.const 1)) (i32.and (local.get $b) (i32.const 15))))))
    (if (i32.eq (local.get $b) (i32.const 0xde))
      (then (return (call $pack (i32.add (local.get $p) (i32.const 3)) (call $be16 (i32.add (local.get $p) (i32.const 1)))))))
    (if (i32.eq (local.get $b) (i32.const 0xdf))
      (then (return (call $pack (i32.add (local.get $p) (i32.const 5)) (call $be32 (i32.add (local.get $p) (i32.const 1)))))))
    (i64.const -1))
  (func $mp_array (param $p i32) (result i64)
    (local $b i32)
    (local.set $b (i32.load8_u (local.get $p)))
    (if (i32.eq (i32.and (local.get $b) (i32.const 0xf0)) (i32.const 0x90))
      (then (return (call $pack (i32.add (local.get $p) (i32.const 1)) (i32.and (local.get $b) (i32.const 15))))))
    (if (i32.eq (local.get $b) (i32.const 0xdc))
      (then (return (call $pack (i32.add (local.get $p) (i32.const 3)) (call $be16 (i32.add (local.get $p) (i32.const 1)))))))
    (if (i32.eq (local.get $b) (i32.const 0xdd))
      (then (return (call $pack (i32.add (local.get $p) (i32.const 5)) (call $be32 (i32.add (local.get $p) (i32.const 1)))))))
    (i64.const -1))

  (func $is_nil (param $p i32) (result i32) (i32.eq (i32.load8_u (local.get $p)) (i32.const 0xc0)))

  ;; $mp_int: 1 when the value at $p is an integer (any width), with the value left in $int_value.
  (global $int_value (mut i64) (i64.const 0))
  (func $mp_int (param $p i32) (result i32)
    (local $b i32)
    (local.set $b (i32.load8_u (local.get $p)))
    (block $found
      (if (i32.lt_u (local.get $b) (i32.const 0x80)) (then (global.set $int_value (i64.extend_i32_u (local.get $b))) (br $found)))
      (if (i32.ge_u (local.get $b) (i32.const 0xe0)) (then (global.set $int_value (i64.extend8_s (i64.extend_i32_u (local.get $b)))) (br $found)))
      (if (i32.eq (local.get $b) (i32.const 0xcc)) (then (global.set $int_value (i64.extend_i32_u (call $u8 (i32.add (local.get $p) (i32.const 1))))) (br $found)))
      (if (i32.eq (local.get $b) (i32.const 0xcd)) (then (global.set $int_value (i64.extend_i32_u (call $be16 (i32.add (local.get $p) (i32.const 1))))) (br $found)))
      (if (i32.eq (local.get $b) (i32.const 0xce)) (then (global.set $int_value (i64.extend_i32_u (call $be32 (i32.add (local.get $p) (i32.const 1))))) (br $found)))
      (if (i32.eq (local.get $b) (i32.const 0xcf)) (then (global.set $int_value (call $be64 (i32.add (local.get $p) (i32.const 1)))) (br $found)))
      (if (i32.eq (local.get $b) (i32.const 0xd0)) (then (global.set $int_value (i64.extend8_s (i64.extend_i32_u (call $u8 (i32.add (local.get $p) (i32.const 1)))))) (br $found)))
      (if (i32.eq (local.get $b) (i32.const 0xd1)) (then (global.set $int_value (i64.extend16_s (i64.extend_i32_u (call $be16 (i32.add (local.get $p) (i32.const 1)))))) (br $found)))
      (if (i32.eq (local.get $b) (i32.const 0xd2)) (then (global.set $int_value (i64.extend_i32_s (call $be32 (i32.add (local.get $p) (i32.const 1))))) (br $found)))
      (if (i32.eq (local.get $b) (i32.const 0xd3)) (then (global.set $int_value (call $be64 (i32.add (local.get $p) (i32.const 1)))) (br $found)))
      (return (i32.const 0)))
    (i32.const 1))

  ;; $mp_bool: 1 / 0 for true / false, -1 when the value at $p is not a bool.
  (func $mp_bool (param $p i32) (result i32)
    (local $b i32)
    (local.set $b (i32.load8_u (local.get $p)))
    (if (i32.eq (local.get $b) (i32.const 0xc3)) (then (return (i32.const 1))))
    (if (i32.eq (local.get $b) (i32.const 0xc2)) (then (return (i32.const 0))))
    (i32.const -1))

  ;; $mp_float: 1 when the value at $p is a float32/float64, with the value in $float_value
  ;; (and $float_was32 = 1 for a float32).
  (global $float_value (mut f64) (f64.const 0))
  (global $float_was32 (mut i32) (i32.const 0))
  (func $mp_float (param $p i32) (result i32)
    (local $b i32)
    (local.set $b (i32.load8_u (local.get $p)))
    (if (i32.eq (local.get $b) (i32.const 0xca))
      (then (global.set $float_value (f64.promote_f32 (f32.reinterpret_i32 (call $be32 (i32.add (local.get $p) (i32.const 1))))))
            (global.set $float_was32 (i32.const 1)) (return (i32.const 1))))
    (if (i32.eq (local.get $b) (i32.const 0xcb))
      (then (global.set $float_value (f64.reinterpret_i64 (call $be64 (i32.add (local.get $p) (i32.const 1)))))
            (global.set $float_was32 (i32.const 0)) (return (i32.const 1))))
    (i32.const 0))

  ;; $mp_bin: the bytes of a bin8/16/32 at $p, packed; -1 if it is not a bin.
  (func $mp_bin (param $p i32) (result i64)
    (local $b i32) (local $data i32) (local $len i32)
    (local.set $b (i32.load8_u (local.get $p)))
    (block $found
      (if (i32.eq (local.get $b) (i32.const 0xc4))
        (then (local.set $data (i32.add (local.get $p) (i32.const 2)))
              (local.set $len (call $u8 (i32.add (local.get $p) (i32.const 1)))) (br $found)))
      (if (i32.eq (local.get $b) (i32.const 0xc5))
        (then (local.set $data (i32.add (local.get $p) (i32.const 3)))
              (local.set $len (call $be16 (i32.add (local.get $p) (i32.const 1)))) (br $found)))
      (if (i32.eq (local.get $b) (i32.const 0xc6))
        (then (local.set $data (i32.add (local.get $p) (i32.const 5)))
              (local.set $len (call $be32 (i32.add (local.get $p) (i32.const 1)))) (br $found)))
      (return (i64.const -1)))
    (if (i32.gt_u (i32.add (local.get $data) (local.get $len)) (global.get $end)) (then unreachable))
    (call $pack (local.get $data) (local.get $len)))

  ;; $mp_ext: the data of an ext (fixext1..16, ext8/16/32) at $p, packed, with its type in $ext_type;
  ;; -1 if it is not an ext.
  (global $ext_type (mut i32) (i32.const 0))
  (func $mp_ext (param $p i32) (result i64)
    (local $b i32) (local $head i32) (local $len i32)
    (local.set $b (i32.load8_u (local.get $p)))
    (block $found
      (if (i32.and (i32.ge_u (local.get $b) (i32.const 0xd4)) (i32.le_u (local.get $b) (i32.const 0xd8)))
        (then (local.set $head (i32.const 2))
              (local.set $len (i32.shl (i32.const 1) (i32.sub (local.get $b) (i32.const 0xd4)))) (br $found)))
      (if (i32.eq (local.get $b) (i32.const 0xc7))
        (then (local.set $head (i32.const 3)) (local.set $len (call $u8 (i32.add (local.get $p) (i32.const 1)))) (br $found)))
      (if (i32.eq (local.get $b) (i32.const 0xc8))
        (then (local.set $head (i32.const 4)) (local.set $len (call $be16 (i32.add (local.get $p) (i32.const 1)))) (br $found)))
      (if (i32.eq (local.get $b) (i32.const 0xc9))
        (then (local.set $head (i32.const 6)) (local.set $len (call $be32 (i32.add (local.get $p) (i32.const 1)))) (br $found)))
      (return (i64.const -1)))
    (if (i32.gt_u (i32.add (i32.add (local.get $p) (local.get $head)) (local.get $len)) (global.get $end)) (then unreachable))
    (global.set $ext_type (i32.load8_s (i32.add (local.get $p) (i32.sub (local.get $head) (i32.const 1)))))
    (call $pack (i32.add (local.get $p) (local.get $head)) (local.get $len)))

  (func $mem_eq (param $a i32) (param $alen i32) (param $b i32) (param $blen i32) (result i32)
    (local $i i32)
    (if (i32.ne (local.get $alen) (local.get $blen)) (then (return (i32.const 0))))
    (block $out
      (loop $cmp
        (br_if $out (i32.ge_u (local.get $i) (local.get $alen)))
        (if (i32.ne (i32.load8_u (i32.add (local.get $a) (local.get $i))) (i32.load8_u (i32.add (local.get $b) (local.get $i))))
          (then (return (i32.const 0))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $cmp)))
    (i32.const 1))
  ;; $str_eq: 1 when the packed string $s equals the bytes at $ptr/$len (0 when $s is -1).
  (func $str_eq (param $s i64) (param $ptr i32) (param $len i32) (result i32)
    (if (i64.eq (local.get $s) (i64.const -1)) (then (return (i32.const 0))))
    (call $mem_eq (call $ptr_of (local.get $s)) (call $len_of (local.get $s)) (local.get $ptr) (local.get $len)))

  ;; $get: the value stored under the string key $key/$len in the map at $p; 0 if absent or not a map.
  (func $get (param $p i32) (param $key i32) (param $len i32) (result i32)
    (local $m i64) (local $n i32) (local $at i32)
    (local.set $m (call $mp_map (local.get $p)))
    (if (i64.eq (local.get $m) (i64.const -1)) (then (return (i32.const 0))))
    (local.set $at (call $ptr_of (local.get $m)))
    (local.set $n (call $len_of (local.get $m)))
    (block $out
      (loop $entry
        (br_if $out (i32.eqz (local.get $n)))
        (if (call $str_eq (call $mp_str (local.get $at)) (local.get $key) (local.get $len))
          (then (return (call $mp_skip (local.get $at)))))
        (local.set $at (call $mp_skip (call $mp_skip (local.get $at))))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $entry)))
    (i32.const 0))
  ;; $get_str: the string under $key in the map at $p, packed; -1 if absent or not a string.
  (func $get_str (param $p i32) (param $key i32) (param $len i32) (result i64)
    (local $v i32)
    (local.set $v (call $get (local.get $p) (local.get $key) (local.get $len)))
    (if (i32.eqz (local.get $v)) (then (return (i64.const -1))))
    (call $mp_str (local.get $v)))

  ;; $at: the item at $index of the array at $p; 0 if out of range or not an array.
  (func $at (param $p i32) (param $index i32) (result i32)
    (local $c i64) (local $item i32)
    (local.set $c (call $mp_array (local.get $p)))
    (if (i64.eq (local.get $c) (i64.const -1)) (then (return (i32.const 0))))
    (if (i32.ge_u (local.get $index) (call $len_of (local.get $c))) (then (return (i32.const 0))))
    (local.set $item (call $ptr_of (local.get $c)))
    (block $out (loop $next
      (br_if $out (i32.eqz (local.get $index)))
      (local.set $item (call $mp_skip (local.get $item)))
      (local.set $index (i32.sub (local.get $index) (i32.const 1)))
      (br $next)))
    (local.get $item))

  ;; ---- event helpers ----
  ;; $event_data: the system event's `data` map. $incoming: the user's event (data.event), 0 if none.
  (func $event_data (param $event i32) (result i32) (call $get (local.get $event) (i32.const 1280) (i32.const 4)))
  (func $incoming (param $event i32) (result i32)
    (local $d i32)
    (local.set $d (call $event_data (local.get $event)))
    (if (i32.eqz (local.get $d)) (then (return (i32.const 0))))
    (call $get (local.get $d) (i32.const 1344) (i32.const 5)))
  ;; $ce_type / $ce_id: a CloudEvent's type (`type`, else 0.1's `eventType`) and id value (`id`, else `eventID`).
  (func $ce_type (param $ce i32) (result i64)
    (local $s i64)
    (if (i32.eqz (local.get $ce)) (then (return (i64.const -1))))
    (local.set $s (call $get_str (local.get $ce) (i32.const 1088) (i32.const 4)))
    (if (i64.ne (local.get $s) (i64.const -1)) (then (return (local.get $s))))
    (call $get_str (local.get $ce) (i32.const 1024) (i32.const 9)))
  (func $ce_id (param $ce i32) (result i32)
    (local $v i32)
    (if (i32.eqz (local.get $ce)) (then (return (i32.const 0))))
    (local.set $v (call $get (local.get $ce) (i32.const 1408) (i32.const 2)))
    (if (local.get $v) (then (return (local.get $v))))
    (call $get (local.get $ce) (i32.const 1472) (i32.const 7)))

  ;; ---- msgpack writer: $w_begin, then $w_* calls, then $w_end returns the packed buffer ----
  (func $w_begin
    (global.set $wstart (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (global.set $wpos (global.get $wstart)))
  (func $w_end (result i64)
    (global.set $heap (global.get $wpos))
    (call $pack (global.get $wstart) (i32.sub (global.get $wpos) (global.get $wstart))))
  (func $w_byte (param $b i32)
    (call $ensure (i32.add (global.get $wpos) (i32.const 1)))
    (i32.store8 (global.get $wpos) (local.get $b))
    (global.set $wpos (i32.add (global.get $wpos) (i32.const 1))))
  (func $w_be16 (param $v i32)
    (call $w_byte (i32.shr_u (local.get $v) (i32.const 8))) (call $w_byte (local.get $v)))
  (func $w_be32 (param $v i32)
    (call $w_be16 (i32.shr_u (local.get $v) (i32.const 16))) (call $w_be16 (local.get $v)))
  (func $w_be64 (param $v i64)
    (call $w_be32 (i32.wrap_i64 (i64.shr_u (local.get $v) (i64.const 32)))) (call $w_be32 (i32.wrap_i64 (local.get $v))))
  ;; $w_raw: copy bytes as they are (an already-encoded value, or text inside a string being built).
  (func $w_raw (param $ptr i32) (param $len i32)
    (call $ensure (i32.add (global.get $wpos) (local.get $len)))
    (memory.copy (global.get $wpos) (local.get $ptr) (local.get $len))
    (global.set $wpos (i32.add (global.get $wpos) (local.get $len))))
  ;; $w_value: copy the encoded value at $p (any type) unchanged.
  (func $w_value (param $p i32)
    (call $w_raw (local.get $p) (i32.sub (call $mp_skip (local.get $p)) (local.get $p))))
  (func $w_nil (call $w_byte (i32.const 0xc0)))
  (func $w_str (param $ptr i32) (param $len i32)
    (block $header
      (if (i32.lt_u (local.get $len) (i32.const 32))
        (then (call $w_byte (i32.or (i32.const 0xa0) (local.get $len))) (br $header)))
      (if (i32.lt_u (local.get $len) (i32.const 256))
        (then (call $w_byte (i32.const 0xd9)) (call $w_byte (local.get $len)) (br $header)))
      (if (i32.lt_u (local.get $len) (i32.const 65536))
        (then (call $w_byte (i32.const 0xda)) (call $w_be16 (local.get $len)) (br $header)))
      (call $w_byte (i32.const 0xdb)) (call $w_be32 (local.get $len)))
    (call $w_raw (local.get $ptr) (local.get $len)))
  (func $w_bool (param $b i32) (call $w_byte (select (i32.const 0xc3) (i32.const 0xc2) (local.get $b))))
  (func $w_f64 (param $v f64) (call $w_byte (i32.const 0xcb)) (call $w_be64 (i64.reinterpret_f64 (local.get $v))))
  (func $w_f32 (param $v f32) (call $w_byte (i32.const 0xca)) (call $w_be32 (i32.reinterpret_f32 (local.get $v))))
  (func $w_sized (param $len i32) (param $b8 i32)   ;; bin/ext headers: $b8, then $b8+1 (16-bit), $b8+2 (32-bit)
    (if (i32.lt_u (local.get $len) (i32.const 256))
      (then (call $w_byte (local.get $b8)) (call $w_byte (local.get $len)) (return)))
    (if (i32.lt_u (local.get $len) (i32.const 65536))
      (then (call $w_byte (i32.add (local.get $b8) (i32.const 1))) (call $w_be16 (local.get $len)) (return)))
    (call $w_byte (i32.add (local.get $b8) (i32.const 2))) (call $w_be32 (local.get $len)))
  (func $w_bin (param $ptr i32) (param $len i32)
    (call $w_sized (local.get $len) (i32.const 0xc4))
    (call $w_raw (local.get $ptr) (local.get $len)))
  (func $w_ext (param $type i32) (param $ptr i32) (param $len i32)
    (block $header
      (if (i32.eq (local.get $len) (i32.const 1)) (then (call $w_byte (i32.const 0xd4)) (br $header)))
      (if (i32.eq (local.get $len) (i32.const 2)) (then (call $w_byte (i32.const 0xd5)) (br $header)))
      (if (i32.eq (local.get $len) (i32.const 4)) (then (call $w_byte (i32.const 0xd6)) (br $header)))
      (if (i32.eq (local.get $len) (i32.const 8)) (then (call $w_byte (i32.const 0xd7)) (br $header)))
      (if (i32.eq (local.get $len) (i32.const 16)) (then (call $w_byte (i32.const 0xd8)) (br $header)))
      (call $w_sized (local.get $len) (i32.const 0xc7)))
    (call $w_byte (local.get $type))
    (call $w_raw (local.get $ptr) (local.get $len)))
  (func $w_packed_str (param $s i64) (call $w_str (call $ptr_of (local.get $s)) (call $len_of (local.get $s))))
  (func $w_container (param $n i32) (param $fix i32) (param $b16 i32)
    (if (i32.lt_u (local.get $n) (i32.const 16))
      (then (call $w_byte (i32.or (local.get $fix) (local.get $n))) (return)))
    (if (i32.lt_u (local.get $n) (i32.const 65536))
      (then (call $w_byte (local.get $b16)) (call $w_be16 (local.get $n)) (return)))
    (call $w_byte (i32.add (local.get $b16) (i32.const 1))) (call $w_be32 (local.get $n)))
  (func $w_map (param $n i32) (call $w_container (local.get $n) (i32.const 0x80) (i32.const 0xde)))
  (func $w_array (param $n i32) (call $w_container (local.get $n) (i32.const 0x90) (i32.const 0xdc)))
  ;; $w_int: the smallest encoding of a signed 64-bit integer (the same choice as msgpack's reference packers).
  (func $w_int (param $v i64)
    (if (i64.ge_s (local.get $v) (i64.const 0))
      (then
        (if (i64.lt_s (local.get $v) (i64.const 128)) (then (call $w_byte (i32.wrap_i64 (local.get $v))) (return)))
        (if (i64.lt_s (local.get $v) (i64.const 256)) (then (call $w_byte (i32.const 0xcc)) (call $w_byte (i32.wrap_i64 (local.get $v))) (return)))
        (if (i64.lt_s (local.get $v) (i64.const 65536)) (then (call $w_byte (i32.const 0xcd)) (call $w_be16 (i32.wrap_i64 (local.get $v))) (return)))
        (if (i64.lt_s (local.get $v) (i64.const 4294967296)) (then (call $w_byte (i32.const 0xce)) (call $w_be32 (i32.wrap_i64 (local.get $v))) (return)))
        (call $w_byte (i32.const 0xcf)) (call $w_be64 (local.get $v)) (return)))
    (if (i64.ge_s (local.get $v) (i64.const -32)) (then (call $w_byte (i32.wrap_i64 (local.get $v))) (return)))
    (if (i64.ge_s (local.get $v) (i64.const -128)) (then (call $w_byte (i32.const 0xd0)) (call $w_byte (i32.wrap_i64 (local.get $v))) (return)))
    (if (i64.ge_s (local.get $v) (i64.const -32768)) (then (call $w_byte (i32.const 0xd1)) (call $w_be16 (i32.wrap_i64 (local.get $v))) (return)))
    (if (i64.ge_s (local.get $v) (i64.const -2147483648)) (then (call $w_byte (i32.const 0xd2)) (call $w_be32 (i32.wrap_i64 (local.get $v))) (return)))
    (call $w_byte (i32.const 0xd3)) (call $w_be64 (local.get $v)))
  ;; $w_dec: an unsigned integer as decimal text (for log lines and messages, not msgpack).
  (func $w_dec (param $v i64)
    (if (i64.ge_u (local.get $v) (i64.const 10)) (then (call $w_dec (i64.div_u (local.get $v) (i64.const 10)))))
    (call $w_byte (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $v) (i64.const 10))))))

  ;; $w_subscription: one {"eventType": <type>, "type": "sync"|"async"} entry of the subscriptions array.
  (func $w_subscription (param $type i32) (param $len i32) (param $async i32)
    (call $w_map (i32.const 2))
    (call $w_str (i32.const 1024) (i32.const 9)) (call $w_str (local.get $type) (local.get $len))
    (call $w_str (i32.const 1088) (i32.const 4))
    (if (local.get $async)
      (then (call $w_str (i32.const 1216) (i32.const 5)))
      (else (call $w_str (i32.const 1152) (i32.const 4)))))

  ;; ---- reactions and logging ----
  (global $CONTINUE i64 (i64.const 0))
  ;; $reject: {"error": <message>, "status": <status>}; $message is a packed string (e.g. from $w_end).
  (func $reject (param $message i64) (param $status i32) (result i64)
    (call $w_begin)
    (call $w_map (i32.const 2))
    (call $w_str (i32.const 1536) (i32.const 5)) (call $w_packed_str (local.get $message))
    (call $w_str (i32.const 1600) (i32.const 6)) (call $w_int (i64.extend_i32_s (local.get $status)))
    (call $w_end))
  ;; $error_reaction: {"error": <message>} (from init this fails the plugin's load).
  (func $error_reaction (param $message i64) (result i64)
    (call $w_begin)
    (call $w_map (i32.const 1))
    (call $w_str (i32.const 1536) (i32.const 5)) (call $w_packed_str (local.get $message))
    (call $w_end))
  ;; To rewrite the event: (call $w_begin) (call $w_map (i32.const 1)) (call $w_str (i32.const 1344) (i32.const 5))
  ;; then write the new event map and return (call $w_end).
  (func $log_packed (param $level i32) (param $s i64)
    (call $log (local.get $level) (call $ptr_of (local.get $s)) (call $len_of (local.get $s))))
  ;; ==== END EVENTGATEWAY WAT KIT v1 ====

  ;; ==== BEGIN EVENTGATEWAY WAT KIT codes v1 ====
  (global $EG_OK i32 (i32.const 0))
  (global $EG_NOT_FOUND i32 (i32.const -1))      ;; kv: no such key (or it expired)
  (global $EG_INVALID i32 (i32.const -2))        ;; a malformed argument (empty key, TTL out of range, bad name ...)
  (global $EG_TOO_LARGE i32 (i32.const -3))      ;; a key or value over its limit (or over the plugin's memory)
  (global $EG_QUOTA i32 (i32.const -4))          ;; kv keys or bytes, or metric series, used up
  (global $EG_UNAVAILABLE i32 (i32.const -5))    ;; the backend cannot answer now
  (global $EG_DENIED i32 (i32.const -6))         ;; http: the URL is under no grant
  (global $EG_TIMEOUT i32 (i32.const -7))        ;; out of time
  (global $EG_NOT_A_NUMBER i32 (i32.const -8))   ;; kv incr on a value that is not a decimal int64, or overflow
  (global $EG_NO_FUEL i32 (i32.const -9))        ;; the remaining fuel cannot pay for the call
  ;; ==== END EVENTGATEWAY WAT KIT codes v1 ====

  ;; ==== BEGIN EVENTGATEWAY WAT KIT kv v1 ====
  ;; Keys and values are (ptr, len) bytes; TTLs are i64 milliseconds (0 = never expires).
  ;; $kv_get: the value under the key, packed (ptr << 32 | len) in scratch memory, or a negative i64: the
  ;; error code ($EG_NOT_FOUND when absent). It offers the host 256 bytes first and, when the host
  ;; answers the length it needs, grows the buffer to that and asks again.
  (func $kv_get (param $key i32) (param $key_len i32) (result i64)
    (local $mark i32) (local $buf i32) (local $cap i32) (local $r i32)
    (local.set $mark (global.get $heap))
    (local.set $cap (i32.const 256))
    (loop $again
      (local.set $buf (call $bump (local.get $cap)))
      (if (i32.eqz (local.get $buf))   ;; the plugin's memory cannot hold it
        (then (global.set $heap (local.get $mark)) (return (i64.extend_i32_s (global.get $EG_TOO_LARGE)))))
      (local.set $r (call $host_kv_get (local.get $key) (local.get $key_len) (local.get $buf) (local.get $cap)))
      (if (i32.lt_s (local.get $r) (i32.const 0))
        (then (global.set $heap (local.get $mark)) (return (i64.extend_i32_s (local.get $r)))))
      (if (i32.gt_u (local.get $r) (local.get $cap))   ;; nothing written: grow to the needed length
        (then (global.set $heap (local.get $mark)) (local.set $cap (local.get $r)) (br $again))))
    (global.set $heap (i32.add (local.get $buf) (local.get $r)))   ;; keep only what the host wrote
    (call $pack (local.get $buf) (local.get $r)))
  ;; $kv_set: $EG_OK or an error code.
  (func $kv_set (param $key i32) (param $key_len i32) (param $value i32) (param $value_len i32) (param $ttl_ms i64) (result i32)
    (call $host_kv_set (local.get $key) (local.get $key_len) (local.get $value) (local.get $value_len) (local.get $ttl_ms)))
  ;; $kv_delete: 1 if a key was deleted, 0 if there was none, or an error code.
  (func $kv_delete (param $key i32) (param $key_len i32) (result i32)
    (call $host_kv_delete (local.get $key) (local.get $key_len)))
  ;; $kv_incr: adds $delta to the integer at the key (absent = 0; $ttl_ms applies only when this creates
  ;; the key); $EG_OK with the new value in $kv_int, or an error code.
  (global $kv_int (mut i64) (i64.const 0))
  (func $kv_incr (param $key i32) (param $key_len i32) (param $delta i64) (param $ttl_ms i64) (result i32)
    (local $out i32) (local $r i32)
    (local.set $out (call $bump (i32.const 8)))
    (if (i32.eqz (local.get $out)) (then (return (global.get $EG_TOO_LARGE))))
    (local.set $r (call $host_kv_incr (local.get $key) (local.get $key_len) (local.get $delta) (local.get $ttl_ms) (local.get $out)))
    (if (i32.eqz (local.get $r)) (then (global.set $kv_int (i64.load (local.get $out)))))   ;; little-endian int64
    (global.set $heap (local.get $out))
    (local.get $r))
  ;; $kv_cas: replaces the value by $value only if it equals $expected ($expected_len -1: only if the key
  ;; is absent); 1 if it swapped, 0 if not, or an error code.
  (func $kv_cas (param $key i32) (param $key_len i32) (param $expected i32) (param $expected_len i32)
                (param $value i32) (param $value_len i32) (param $ttl_ms i64) (result i32)
    (call $host_kv_cas (local.get $key) (local.get $key_len) (local.get $expected) (local.get $expected_len)
                       (local.get $value) (local.get $value_len) (local.get $ttl_ms)))
  ;; ==== END EVENTGATEWAY WAT KIT kv v1 ====

  (data (i32.const 2048) "eventgateway.event.received")   ;; 27
  (data (i32.const 2112) "limit")                         ;; 5
  (data (i32.const 2176) "windowSeconds")                 ;; 13
  (data (i32.const 2240) "keyBy")                         ;; 5
  (data (i32.const 2304) "onError")                       ;; 7
  (data (i32.const 2368) "header:")                       ;; 7
  (data (i32.const 2432) "open")                          ;; 4
  (data (i32.const 2496) "closed")                        ;; 6
  (data (i32.const 2560) "headers")                       ;; 7
  (data (i32.const 2624) "ratelimit: invalid config: ")   ;; 27
  (data (i32.const 2688) "limit is required (a positive integer)")                    ;; 38
  (data (i32.const 2752) "limit must be a positive integer")                          ;; 32
  (data (i32.const 2816) "windowSeconds is required (an integer from 1 to 31536000)") ;; 57
  (data (i32.const 2880) "windowSeconds must be an integer from 1 to 31536000")       ;; 51
  (data (i32.const 2944) "keyBy must be a string")        ;; 22
  (data (i32.const 3008) "keyBy must be source, type or header:<Name>")               ;; 43
  (data (i32.const 3072) "onError must be open or closed")                            ;; 30
  (data (i32.const 3136) "rate limit exceeded for ")      ;; 24
  (data (i32.const 3200) " events per ")                  ;; 12
  (data (i32.const 3264) "rate limiter unavailable: kv error ")                       ;; 35
  (data (i32.const 3328) "ratelimit: kv error ")          ;; 20
  (data (i32.const 3392) "; letting the event through")   ;; 27
  (data (i32.const 3456) "0123456789abcdef")              ;; 16
  (data (i32.const 3520) "rl:")                           ;; 3
  (data (i32.const 3584) "rl#")                           ;; 3
  (data (i32.const 3648) "type")                          ;; 4
  ;; the kv key is built at 12288 (at most 3 + 200 bytes)

  ;; A fixed-window rate limiter on the gateway's shared kv (capability kv): the (limit+1)-th event of a
  ;; key within windowSeconds is rejected with 429. Config: {"limit": N, "windowSeconds": S, "keyBy":
  ;; "source" | "type" | "header:<Name>", "onError": "open" | "closed"} (keyBy defaults to "source",
  ;; onError to "open"). The key's value is the incoming event's source or type, or a request header
  ;; (name matched in any case); a missing one counts as "". The counter lives at kv key "rl:<value>"
  ;; ("rl#<FNV-1a 64 in hex>" past 200 bytes), created by $kv_incr with the window as its TTL. A kv error
  ;; lets the event through with a warning (open) or rejects it with 503 (closed).
  (global $limit (mut i64) (i64.const 0))
  (global $window (mut i64) (i64.const 0))
  (global $key_by (mut i64) (i64.const 0))     ;; packed; "source" unless configured
  (global $by (mut i32) (i32.const 0))         ;; 0 source, 1 type, 2 header
  (global $header_name (mut i64) (i64.const 0))
  (global $closed (mut i32) (i32.const 0))

  (func $on_subscriptions (result i64)
    (call $w_begin)
    (call $w_array (i32.const 1))
    (call $w_subscription (i32.const 2048) (i32.const 27) (i32.const 0))
    (call $w_end))

  (func $invalid (param $what i32) (param $len i32) (result i64)
    (call $w_begin)
    (call $w_raw (i32.const 2624) (i32.const 27))
    (call $w_raw (local.get $what) (local.get $len))
    (call $error_reaction (call $w_end)))

  ;; $positive: 1 when the value at $v is an integer from 1 to $max (the value in $int_value).
  (func $positive (param $v i32) (param $max i64) (result i32)
    (if (i32.eqz (local.get $v)) (then (return (i32.const 0))))
    (if (i32.eqz (call $mp_int (local.get $v))) (then (return (i32.const 0))))
    (if (i64.lt_s (global.get $int_value) (i64.const 1)) (then (return (i32.const 0))))
    (i64.le_s (global.get $int_value) (local.get $max)))

  (func $on_init (param $config i32) (result i64)
    (local $v i32) (local $s i64)
    (global.set $key_by (call $pack (i32.const 1664) (i32.const 6)))   ;; "source"
    (local.set $v (call $get (local.get $config) (i32.const 2112) (i32.const 5)))
    (if (i32.eqz (local.get $v)) (then (return (call $invalid (i32.const 2688) (i32.const 38)))))
    (if (i32.eqz (call $positive (local.get $v) (i64.const 0x7fffffffffffffff)))
      (then (return (call $invalid (i32.const 2752) (i32.const 32)))))
    (global.set $limit (global.get $int_value))
    (local.set $v (call $get (local.get $config) (i32.const 2176) (i32.const 13)))
    (if (i32.eqz (local.get $v)) (then (return (call $invalid (i32.const 2816) (i32.const 57)))))
    (if (i32.eqz (call $positive (local.get $v) (i64.const 31536000)))
      (then (return (call $invalid (i32.const 2880) (i32.const 51)))))
    (global.set $window (global.get $int_value))
    (local.set $v (call $get (local.get $config) (i32.const 2240) (i32.const 5)))
    (if (i32.and (i32.ne (local.get $v) (i32.const 0)) (i32.eqz (call $is_nil (local.get $v))))
      (then
        (local.set $s (call $mp_str (local.get $v)))
        (if (i64.eq (local.get $s) (i64.const -1)) (then (return (call $invalid (i32.const 2944) (i32.const 22)))))
        (global.set $key_by (local.get $s))
        (block $ok
          (if (call $str_eq (local.get $s) (i32.const 1664) (i32.const 6)) (then (global.set $by (i32.const 0)) (br $ok)))
          (if (call $str_eq (local.get $s) (i32.const 3648) (i32.const 4)) (then (global.set $by (i32.const 1)) (br $ok)))
          (if (i32.and (i32.gt_u (call $len_of (local.get $s)) (i32.const 7))
                       (call $mem_eq (call $ptr_of (local.get $s)) (i32.const 7) (i32.const 2368) (i32.const 7)))
            (then (global.set $by (i32.const 2))
                  (global.set $header_name (call $pack (i32.add (call $ptr_of (local.get $s)) (i32.const 7))
                                                       (i32.sub (call $len_of (local.get $s)) (i32.const 7))))
                  (br $ok)))
          (return (call $invalid (i32.const 3008) (i32.const 43))))))
    (local.set $v (call $get (local.get $config) (i32.const 2304) (i32.const 7)))
    (if (i32.and (i32.ne (local.get $v) (i32.const 0)) (i32.eqz (call $is_nil (local.get $v))))
      (then
        (local.set $s (call $mp_str (local.get $v)))
        (block $ok
          (if (call $str_eq (local.get $s) (i32.const 2432) (i32.const 4)) (then (global.set $closed (i32.const 0)) (br $ok)))
          (if (call $str_eq (local.get $s) (i32.const 2496) (i32.const 6)) (then (global.set $closed (i32.const 1)) (br $ok)))
          (return (call $invalid (i32.const 3072) (i32.const 30))))))
    (global.get $CONTINUE))

  (func $lower (param $c i32) (result i32)
    (if (result i32) (i32.and (i32.ge_u (local.get $c) (i32.const 65)) (i32.le_u (local.get $c) (i32.const 90)))
      (then (i32.add (local.get $c) (i32.const 32))) (else (local.get $c))))
  ;; $eq_nocase: the packed strings $a and $b are equal in ASCII case-insensitive comparison.
  (func $eq_nocase (param $a i64) (param $b i64) (result i32)
    (local $i i32) (local $n i32)
    (if (i64.eq (local.get $a) (i64.const -1)) (then (return (i32.const 0))))
    (local.set $n (call $len_of (local.get $a)))
    (if (i32.ne (local.get $n) (call $len_of (local.get $b))) (then (return (i32.const 0))))
    (block $out (loop $next
      (br_if $out (i32.ge_u (local.get $i) (local.get $n)))
      (if (i32.ne (call $lower (i32.load8_u (i32.add (call $ptr_of (local.get $a)) (local.get $i))))
                  (call $lower (i32.load8_u (i32.add (call $ptr_of (local.get $b)) (local.get $i)))))
        (then (return (i32.const 0))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (i32.const 1))
  ;; $request_header: the system event's data.headers entry named $name (any case), packed; -1 if none.
  (func $request_header (param $event i32) (param $name i64) (result i64)
    (local $m i64) (local $n i32) (local $at i32)
    (local.set $m (call $mp_map (call $get (call $event_data (local.get $event)) (i32.const 2560) (i32.const 7))))
    (if (i64.eq (local.get $m) (i64.const -1)) (then (return (i64.const -1))))
    (local.set $at (call $ptr_of (local.get $m)))
    (local.set $n (call $len_of (local.get $m)))
    (block $out (loop $entry
      (br_if $out (i32.eqz (local.get $n)))
      (if (call $eq_nocase (call $mp_str (local.get $at)) (local.get $name))
        (then (return (call $mp_str (call $mp_skip (local.get $at))))))
      (local.set $at (call $mp_skip (call $mp_skip (local.get $at))))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $entry)))
    (i64.const -1))

  ;; $w_code: an error code (negative) as decimal text.
  (func $w_code (param $code i32)
    (call $w_byte (i32.const 45))
    (call $w_dec (i64.extend_i32_u (i32.sub (i32.const 0) (local.get $code)))))

  (func $on_react (param $event i32) (result i64)
    (local $incoming i32) (local $value i64) (local $ptr i32) (local $len i32) (local $key_len i32)
    (local $h i64) (local $i i32) (local $r i32) (local $quoted i32)
    (local.set $incoming (call $incoming (local.get $event)))
    (local.set $value (i64.const -1))
    (if (i32.eqz (global.get $by)) (then (local.set $value (call $get_str (local.get $incoming) (i32.const 1664) (i32.const 6)))))
    (if (i32.eq (global.get $by) (i32.const 1)) (then (local.set $value (call $ce_type (local.get $incoming)))))
    (if (i32.eq (global.get $by) (i32.const 2)) (then (local.set $value (call $request_header (local.get $event) (global.get $header_name)))))
    (if (i64.eq (local.get $value) (i64.const -1)) (then (local.set $value (i64.const 0))))   ;; missing: ""
    (local.set $ptr (call $ptr_of (local.get $value)))
    (local.set $len (call $len_of (local.get $value)))
    ;; the kv key at 12288: "rl:" + value, or "rl#" + 16 hex digits of FNV-1a 64 past 200 bytes
    (if (i32.le_u (local.get $len) (i32.const 200))
      (then
        (memory.copy (i32.const 12288) (i32.const 3520) (i32.const 3))
        (memory.copy (i32.const 12291) (local.get $ptr) (local.get $len))
        (local.set $key_len (i32.add (local.get $len) (i32.const 3))))
      (else
        (local.set $h (i64.const 0xcbf29ce484222325))
        (block $done (loop $byte
          (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
          (local.set $h (i64.mul (i64.xor (local.get $h) (i64.load8_u (i32.add (local.get $ptr) (local.get $i))))
                                 (i64.const 0x100000001b3)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $byte)))
        (memory.copy (i32.const 12288) (i32.const 3584) (i32.const 3))
        (local.set $i (i32.const 0))
        (block $done (loop $digit
          (br_if $done (i32.ge_u (local.get $i) (i32.const 16)))
          (i32.store8 (i32.add (i32.const 12291) (local.get $i))
            (i32.load8_u (i32.add (i32.const 3456)
              (i32.wrap_i64 (i64.and (i64.shr_u (local.get $h) (i64.extend_i32_u (i32.sub (i32.const 60) (i32.shl (local.get $i) (i32.const 2)))))
                                     (i64.const 15))))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $digit)))
        (local.set $key_len (i32.const 19))))
    (local.set $r (call $kv_incr (i32.const 12288) (local.get $key_len) (i64.const 1)
                                 (i64.mul (global.get $window) (i64.const 1000))))
    (if (i32.ne (local.get $r) (global.get $EG_OK))
      (then
        (call $w_begin)
        (if (global.get $closed)
          (then
            (call $w_raw (i32.const 3264) (i32.const 35))
            (call $w_code (local.get $r))
            (return (call $reject (call $w_end) (i32.const 503)))))
        (call $w_raw (i32.const 3328) (i32.const 20))
        (call $w_code (local.get $r))
        (call $w_raw (i32.const 3392) (i32.const 27))
        (call $log_packed (i32.const 2) (call $w_end))
        (return (global.get $CONTINUE))))
    (if (i64.le_s (global.get $kv_int) (global.get $limit)) (then (return (global.get $CONTINUE))))
    (local.set $quoted (local.get $len))
    (if (i32.gt_u (local.get $quoted) (i32.const 100))
      (then
        (local.set $quoted (i32.const 100))
        (block $whole (loop $back   ;; cut at a whole UTF-8 character
          (br_if $whole (i32.eqz (local.get $quoted)))
          (br_if $whole (i32.ne (i32.and (i32.load8_u (i32.add (local.get $ptr) (local.get $quoted))) (i32.const 0xc0)) (i32.const 0x80)))
          (local.set $quoted (i32.sub (local.get $quoted) (i32.const 1)))
          (br $back)))))
    (call $w_begin)
    (call $w_raw (i32.const 3136) (i32.const 24))
    (call $w_raw (call $ptr_of (global.get $key_by)) (call $len_of (global.get $key_by)))
    (call $w_byte (i32.const 32)) (call $w_byte (i32.const 34))
    (call $w_raw (local.get $ptr) (local.get $quoted))
    (call $w_byte (i32.const 34)) (call $w_byte (i32.const 58)) (call $w_byte (i32.const 32))
    (call $w_dec (global.get $limit))
    (call $w_raw (i32.const 3200) (i32.const 12))
    (call $w_dec (global.get $window))
    (call $w_byte (i32.const 32)) (call $w_byte (i32.const 115))
    (call $reject (call $w_end) (i32.const 429)))
)
