  ;; The WAT kit's wrappers for the kv and metrics capabilities (ABI.md 7.1); WAT has no http wrapper.
  ;; They are separate blocks, not part of kit.wat, because a WAT module imports everything it declares:
  ;; a plugin copies only the blocks of the capabilities it uses, and needs only those granted
  ;; (kv = true, metrics = true). WAT wants every import before any definition, so each capability has
  ;; two blocks: its IMPORTS block goes ABOVE the kit block (right after `(module`), its functions block
  ;; BELOW the kit block; the CODES block (the error codes as globals) goes below the kit block once.
  ;; Results: an i32 >= 0 is success, a negative one is an error code ($EG_NOT_FOUND .. $EG_NO_FUEL).
  ;; Bytes the wrappers return live in scratch memory (valid until the plugin returns; in init, for the
  ;; instance's life). Do not call a wrapper between $w_begin and $w_end: they share the scratch heap.

  ;; ==== BEGIN EVENTGATEWAY WAT KIT kv imports v1 ====
  (import "eventgateway" "kv_get" (func $host_kv_get (param i32 i32 i32 i32) (result i32)))
  (import "eventgateway" "kv_set" (func $host_kv_set (param i32 i32 i32 i32 i64) (result i32)))
  (import "eventgateway" "kv_delete" (func $host_kv_delete (param i32 i32) (result i32)))
  (import "eventgateway" "kv_incr" (func $host_kv_incr (param i32 i32 i64 i64 i32) (result i32)))
  (import "eventgateway" "kv_cas" (func $host_kv_cas (param i32 i32 i32 i32 i32 i32 i64) (result i32)))
  ;; ==== END EVENTGATEWAY WAT KIT kv imports v1 ====

  ;; ==== BEGIN EVENTGATEWAY WAT KIT metrics imports v1 ====
  (import "eventgateway" "metric" (func $host_metric (param i32 i32 i32 i32 i32 f64) (result i32)))
  ;; ==== END EVENTGATEWAY WAT KIT metrics imports v1 ====

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

  ;; ==== BEGIN EVENTGATEWAY WAT KIT metrics v1 ====
  ;; $name/$name_len: [a-zA-Z_][a-zA-Z0-9_]*, at most 64 bytes. $labels: a packed msgpack map str -> str
  ;; of at most 8 entries built with the writer BEFORE the call ((call $w_begin) (call $w_map (i32.const 2))
  ;; (call $w_str name) (call $w_str value) ... (call $w_end)), or (i64.const 0) for none.
  ;; Each returns $EG_OK or an error code.
  (func $metric (param $kind i32) (param $name i32) (param $name_len i32) (param $labels i64) (param $value f64) (result i32)
    (call $host_metric (local.get $kind) (local.get $name) (local.get $name_len)
                       (call $ptr_of (local.get $labels)) (call $len_of (local.get $labels)) (local.get $value)))
  (func $metric_counter_add (param $name i32) (param $name_len i32) (param $labels i64) (param $value f64) (result i32)
    (call $metric (i32.const 0) (local.get $name) (local.get $name_len) (local.get $labels) (local.get $value)))
  (func $metric_gauge_set (param $name i32) (param $name_len i32) (param $labels i64) (param $value f64) (result i32)
    (call $metric (i32.const 1) (local.get $name) (local.get $name_len) (local.get $labels) (local.get $value)))
  (func $metric_gauge_add (param $name i32) (param $name_len i32) (param $labels i64) (param $value f64) (result i32)
    (call $metric (i32.const 2) (local.get $name) (local.get $name_len) (local.get $labels) (local.get $value)))
  (func $metric_histogram_observe (param $name i32) (param $name_len i32) (param $labels i64) (param $value f64) (result i32)
    (call $metric (i32.const 3) (local.get $name) (local.get $name_len) (local.get $labels) (local.get $value)))
  ;; ==== END EVENTGATEWAY WAT KIT metrics v1 ====
