// Test module for the kit's msgpack codec: roundtrip(ptr, len) decodes the bytes and answers their
// re-encoding, which tests/pdk/test_go_msgpack.py compares with the reference vectors.
package main

import "eventgateway/pdk"

//go:wasmexport roundtrip
func roundtrip(ptr, length int32) int64 { return pdk.Roundtrip(ptr, length) }

func main() {}
