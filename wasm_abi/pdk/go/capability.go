package pdk

import (
	"strconv"
	"unsafe"
)

// CapError is one of the ABI's error codes (ABI.md section 7.1), returned as the error of a
// capability wrapper (KvGet, HTTPRequest, CounterAdd, ...). Compare with the constants:
// `if err == pdk.ErrTimeout`, or `errors.Is(err, pdk.ErrTimeout)`.
type CapError int32

// The ABI's error codes; Name gives the ABI's name (ErrTimeout.Name() == "EG_TIMEOUT").
const (
	ErrNotFound    CapError = -1 // EG_NOT_FOUND: kv: no such key; http: no response held
	ErrInvalid     CapError = -2 // EG_INVALID: a malformed argument (key, TTL, URL, header, metric name...)
	ErrTooLarge    CapError = -3 // EG_TOO_LARGE: a key, value, request or response over its limit
	ErrQuota       CapError = -4 // EG_QUOTA: the plugin's kv keys/bytes or metric series are used up
	ErrUnavailable CapError = -5 // EG_UNAVAILABLE: the backend cannot answer now
	ErrDenied      CapError = -6 // EG_DENIED: http: the URL is under no grant of this plugin
	ErrTimeout     CapError = -7 // EG_TIMEOUT: the call ran out of time
	ErrNotANumber  CapError = -8 // EG_NOT_A_NUMBER: kv incr on a non-integer value, or an overflow
	ErrNoFuel      CapError = -9 // EG_NO_FUEL: the remaining fuel could not pay for the call
)

var capErrorNames = [...]string{"EG_OK", "EG_NOT_FOUND", "EG_INVALID", "EG_TOO_LARGE", "EG_QUOTA",
	"EG_UNAVAILABLE", "EG_DENIED", "EG_TIMEOUT", "EG_NOT_A_NUMBER", "EG_NO_FUEL"}

// Code is the ABI's number for the error (-1 .. -9, or an unknown code as received).
func (e CapError) Code() int32 { return int32(e) }

// Name is the ABI's name for the error ("EG_TIMEOUT"; "EG_UNKNOWN" for a code this kit does not know).
func (e CapError) Name() string {
	if e <= 0 && int(-e) < len(capErrorNames) {
		return capErrorNames[-e]
	}
	return "EG_UNKNOWN"
}

// Error is "EG_TIMEOUT (-7)".
func (e CapError) Error() string { return e.Name() + " (" + strconv.Itoa(int(e)) + ")" }

// check turns a host call's return code into (the success value, nil) or (0, the CapError).
func check(rc int32) (int32, error) {
	if rc < 0 {
		return 0, CapError(rc)
	}
	return rc, nil
}

func bytesPtr(b []byte) unsafe.Pointer  { return unsafe.Pointer(unsafe.SliceData(b)) }
func stringPtr(s string) unsafe.Pointer { return unsafe.Pointer(unsafe.StringData(s)) }

// readGrown calls fill(buf, len) -- a host function that writes at most len bytes and returns the
// length it has (or needs), or an error code -- with a buffer grown to the needed length until the
// answer fits, and returns exactly the bytes the host wrote.
func readGrown(initial int, fill func(buf unsafe.Pointer, length int32) int32) ([]byte, error) {
	buf := make([]byte, initial, initial+1) // capacity >= 1: even an empty buffer has a real address
	for {
		rc, err := check(fill(bytesPtr(buf[:cap(buf)]), int32(len(buf))))
		if err != nil {
			return nil, err
		}
		needed := int(uint32(rc))
		if needed <= len(buf) {
			return buf[:needed], nil // only what the host wrote
		}
		// Too small: nothing was written; ask again with the length the host needs.
		buf = make([]byte, needed, needed+1)
	}
}
