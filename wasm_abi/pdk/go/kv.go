package pdk

import "unsafe"

// The plugin's key-value namespace (capability kv, ABI.md section 7.1), shared by all of the
// plugin's instances and never seen by another plugin. Keys are 1..256 bytes (any bytes: a Go
// string), values 0..64 KiB; a TTL is in milliseconds, 0 for "never expires", at most a year.
// A module imports only the functions its code calls, so a plugin that calls none needs no grant.

//go:wasmimport eventgateway kv_get
func hostKvGet(key unsafe.Pointer, keyLen int32, buf unsafe.Pointer, bufLen int32) int32

//go:wasmimport eventgateway kv_set
func hostKvSet(key unsafe.Pointer, keyLen int32, value unsafe.Pointer, valueLen int32, ttlMs int64) int32

//go:wasmimport eventgateway kv_delete
func hostKvDelete(key unsafe.Pointer, keyLen int32) int32

//go:wasmimport eventgateway kv_incr
func hostKvIncr(key unsafe.Pointer, keyLen int32, delta int64, ttlMs int64, out unsafe.Pointer) int32

//go:wasmimport eventgateway kv_cas
func hostKvCas(key unsafe.Pointer, keyLen int32, expected unsafe.Pointer, expectedLen int32,
	value unsafe.Pointer, valueLen int32, ttlMs int64) int32

// kvFirstRead is the buffer KvGet tries first; a longer value costs one more call of its length.
const kvFirstRead = 256

// KvGet returns the value stored at key, or ErrNotFound when there is none (or it expired).
func KvGet(key string) ([]byte, error) {
	return readGrown(kvFirstRead, func(buf unsafe.Pointer, length int32) int32 {
		return hostKvGet(stringPtr(key), int32(len(key)), buf, length)
	})
}

// KvSet stores value at key, replacing any value, with this TTL (0: no expiry).
func KvSet(key string, value []byte, ttlMs int64) error {
	_, err := check(hostKvSet(stringPtr(key), int32(len(key)), bytesPtr(value), int32(len(value)), ttlMs))
	return err
}

// KvDelete deletes key and says whether it existed.
func KvDelete(key string) (bool, error) {
	n, err := check(hostKvDelete(stringPtr(key), int32(len(key))))
	return n > 0, err
}

// KvIncr atomically adds delta to the integer at key (absent counts as 0) and returns the new value.
// The TTL applies only when the call creates the key, so KvIncr(key, 1, windowMs) is a fixed-window
// counter. ErrNotANumber when the stored value is not a decimal int64 or the sum would overflow.
func KvIncr(key string, delta int64, ttlMs int64) (int64, error) {
	var out int64
	_, err := check(hostKvIncr(stringPtr(key), int32(len(key)), delta, ttlMs, unsafe.Pointer(&out)))
	if err != nil {
		return 0, err
	}
	return out, nil
}

// KvCAS atomically sets key to value (with this TTL) only if its current value equals expected
// (a nil or empty expected means the empty value), and says whether it swapped.
func KvCAS(key string, expected []byte, value []byte, ttlMs int64) (bool, error) {
	n, err := check(hostKvCas(stringPtr(key), int32(len(key)), bytesPtr(expected), int32(len(expected)),
		bytesPtr(value), int32(len(value)), ttlMs))
	return n > 0, err
}

// KvCASAbsent atomically sets key to value (with this TTL) only if the key is absent, and says
// whether it did.
func KvCASAbsent(key string, value []byte, ttlMs int64) (bool, error) {
	n, err := check(hostKvCas(stringPtr(key), int32(len(key)), nil, -1, bytesPtr(value), int32(len(value)), ttlMs))
	return n > 0, err
}
