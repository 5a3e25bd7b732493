// Test module for the kit's msgpack codec: roundtrip(ptr, len) decodes the bytes and answers their
// re-encoding (0 and an error log line for bad input), which
// tests/pdk/test_kit_msgpack_roundtrip.py compares with the reference vectors.
import { decodeRaw, encode } from "./pdk/msgpack";
import { handOver } from "./pdk/glue";
import { error } from "./pdk/log";
export { alloc } from "./pdk/exports";

export function roundtrip(ptr: i32, len: i32): i64 {
  __collect(); // as the kit's own exports do under --runtime minimal
  const decoded = decodeRaw(<usize>ptr, len);
  heap.free(<usize>ptr);
  if (!decoded.ok) {
    error(decoded.error);
    return 0;
  }
  return handOver(encode(decoded.value));
}
