// The plugin's key-value namespace (capability kv, ABI.md section 7.1): shared by all of the plugin's
// instances and never seen by another plugin. Keys are 1..256 bytes, values 0..64 KiB; each is a string
// (sent as UTF-8) or a Uint8Array. A TTL is in milliseconds, 0 for "never expires", at most a year.
// A module imports only the functions its code calls, so a plugin that calls none needs no grant.
//
//   import { kv } from "./pdk";
//   const count = kv.incr("rl:" + source, 1, 60_000);   // CapResult<i64>
//   if (!count.ok) warn("kv error " + count.errorName);

import { bytesOf, CapError, CapResult } from "./capability";

// @ts-ignore: decorator
@external("eventgateway", "kv_get")
declare function hostKvGet(key: usize, keyLen: i32, buf: usize, bufLen: i32): i32;

// @ts-ignore: decorator
@external("eventgateway", "kv_set")
declare function hostKvSet(key: usize, keyLen: i32, value: usize, valueLen: i32, ttlMs: i64): i32;

// @ts-ignore: decorator
@external("eventgateway", "kv_delete")
declare function hostKvDelete(key: usize, keyLen: i32): i32;

// @ts-ignore: decorator
@external("eventgateway", "kv_incr")
declare function hostKvIncr(key: usize, keyLen: i32, delta: i64, ttlMs: i64, out: usize): i32;

// @ts-ignore: decorator
@external("eventgateway", "kv_cas")
declare function hostKvCas(key: usize, keyLen: i32, expected: usize, expectedLen: i32, value: usize, valueLen: i32, ttlMs: i64): i32;

/** What get() asks for first; a longer value costs one more call with a buffer of its length. */
const FIRST_READ: i32 = 256;

/** The value stored at `key`; `value` is null when there is none (or it expired): that is `ok` too. */
export function get<K>(key: K): CapResult<Uint8Array | null> {
  const k = bytesOf<K>(key);
  let buf = new Uint8Array(FIRST_READ);
  while (true) {
    const rc = hostKvGet(k.dataStart, k.length, buf.dataStart, buf.length);
    if (rc == CapError.NotFound) return new CapResult<Uint8Array | null>(null);
    if (rc < 0) return new CapResult<Uint8Array | null>(null, <CapError>rc);
    if (rc <= buf.length) return new CapResult<Uint8Array | null>(buf.subarray(0, rc)); // only what the host wrote
    // Too small: nothing was written; ask again with the length the host needs.
    buf = new Uint8Array(rc);
  }
  return new CapResult<Uint8Array | null>(null, CapError.Invalid);
}

/** Store `value` at `key`, replacing any value, with this TTL (0: no expiry). */
export function set<K, V>(key: K, value: V, ttlMs: i64): CapResult<bool> {
  const k = bytesOf<K>(key);
  const v = bytesOf<V>(value);
  const rc = hostKvSet(k.dataStart, k.length, v.dataStart, v.length, ttlMs);
  return rc < 0 ? new CapResult<bool>(false, <CapError>rc) : new CapResult<bool>(true);
}

/** Delete `key`; `value` says whether it existed. */
export function del<K>(key: K): CapResult<bool> {
  const k = bytesOf<K>(key);
  const rc = hostKvDelete(k.dataStart, k.length);
  return rc < 0 ? new CapResult<bool>(false, <CapError>rc) : new CapResult<bool>(rc > 0);
}

/**
 * Atomically add `delta` to the integer at `key` (absent counts as 0); `value` is the new value. The TTL
 * applies only when the call creates the key, so incr(key, 1, windowMs) is a fixed-window counter.
 * CapError.NotANumber when the stored value is not a decimal int64 or the sum would overflow.
 */
export function incr<K>(key: K, delta: i64, ttlMs: i64): CapResult<i64> {
  const k = bytesOf<K>(key);
  const out = new Uint8Array(8);
  const rc = hostKvIncr(k.dataStart, k.length, delta, ttlMs, out.dataStart);
  return rc < 0 ? new CapResult<i64>(0, <CapError>rc) : new CapResult<i64>(load<i64>(out.dataStart));
}

/** Atomically set `key` to `value` only if its current value equals `expected`; `value` says whether it swapped. */
export function cas<K, V>(key: K, expected: V, value: V, ttlMs: i64): CapResult<bool> {
  const k = bytesOf<K>(key);
  const e = bytesOf<V>(expected);
  const v = bytesOf<V>(value);
  const rc = hostKvCas(k.dataStart, k.length, e.dataStart, e.length, v.dataStart, v.length, ttlMs);
  return rc < 0 ? new CapResult<bool>(false, <CapError>rc) : new CapResult<bool>(rc > 0);
}

/** Atomically set `key` to `value` only if the key is absent; `value` says whether it did. */
export function casAbsent<K, V>(key: K, value: V, ttlMs: i64): CapResult<bool> {
  const k = bytesOf<K>(key);
  const v = bytesOf<V>(value);
  const rc = hostKvCas(k.dataStart, k.length, 0, -1, v.dataStart, v.length, ttlMs);
  return rc < 0 ? new CapResult<bool>(false, <CapError>rc) : new CapResult<bool>(rc > 0);
}
