//! The plugin's key-value namespace (capability `kv`, ABI.md section 7.1): shared by all of the
//! plugin's instances (and processes, with a shared backend), never seen by another plugin.
//!
//! Keys are 1..256 bytes and values 0..64 KiB (the host's `Limits`); a TTL is in milliseconds, `0`
//! for "never expires", at most a year. Only the functions a plugin calls are imported by its module,
//! so a plugin that never calls one needs no `kv = true` grant.

use crate::capability::{check, raw, read_grown, CapError};

#[link(wasm_import_module = "eventgateway")]
extern "C" {
    fn kv_get(key: i32, key_len: i32, buf: i32, buf_len: i32) -> i32;
    fn kv_set(key: i32, key_len: i32, value: i32, value_len: i32, ttl_ms: i64) -> i32;
    fn kv_delete(key: i32, key_len: i32) -> i32;
    fn kv_incr(key: i32, key_len: i32, delta: i64, ttl_ms: i64, out: i32) -> i32;
    fn kv_cas(key: i32, key_len: i32, expected: i32, expected_len: i32, value: i32, value_len: i32, ttl_ms: i64) -> i32;
}

/// What `kv::get` asks for first; a longer value costs one more call with a buffer of its length.
const FIRST_READ: usize = 256;

/// The value stored at `key`, `None` when there is none (or it expired).
pub fn get(key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, CapError> {
    let (k, k_len) = raw(key.as_ref());
    // Safety: the host writes at most `buf_len` bytes at `buf` during the call and reads `key` only.
    match read_grown(FIRST_READ, |buf, buf_len| unsafe { kv_get(k, k_len, buf, buf_len) }) {
        Ok(value) => Ok(Some(value)),
        Err(CapError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Store `value` at `key` (replacing any value, with this TTL; `0` = no expiry).
pub fn set(key: impl AsRef<[u8]>, value: impl AsRef<[u8]>, ttl_ms: i64) -> Result<(), CapError> {
    let (k, k_len) = raw(key.as_ref());
    let (v, v_len) = raw(value.as_ref());
    // Safety: the host only reads both buffers during the call.
    check(unsafe { kv_set(k, k_len, v, v_len, ttl_ms) }).map(|_| ())
}

/// Delete `key`: `true` if it existed.
pub fn delete(key: impl AsRef<[u8]>) -> Result<bool, CapError> {
    let (k, k_len) = raw(key.as_ref());
    // Safety: the host only reads `key` during the call.
    check(unsafe { kv_delete(k, k_len) }).map(|n| n > 0)
}

/// Atomically add `delta` to the integer at `key` (absent counts as 0) and return the new value. The
/// TTL applies only when this call creates the key, so `incr(key, 1, window_ms)` is a fixed-window
/// counter. `Err(CapError::NotANumber)` when the stored value is not a decimal int64 or would overflow.
pub fn incr(key: impl AsRef<[u8]>, delta: i64, ttl_ms: i64) -> Result<i64, CapError> {
    let (k, k_len) = raw(key.as_ref());
    let mut out = [0u8; 8];
    // Safety: the host reads `key` and writes exactly 8 bytes at `out` during the call.
    check(unsafe { kv_incr(k, k_len, delta, ttl_ms, out.as_mut_ptr() as usize as i32) })?;
    Ok(i64::from_le_bytes(out))
}

/// Atomically set `key` to `value` (with this TTL) only if its current value is `expected`, or, with
/// `expected = None`, only if the key is absent. `true` if it swapped.
pub fn cas(key: impl AsRef<[u8]>, expected: Option<&[u8]>, value: impl AsRef<[u8]>, ttl_ms: i64) -> Result<bool, CapError> {
    let (k, k_len) = raw(key.as_ref());
    let (v, v_len) = raw(value.as_ref());
    let (e, e_len) = match expected {
        Some(bytes) => raw(bytes),
        None => (0, -1), // 0xFFFFFFFF: "only if absent"
    };
    // Safety: the host only reads the three buffers during the call.
    check(unsafe { kv_cas(k, k_len, e, e_len, v, v_len, ttl_ms) }).map(|n| n > 0)
}
