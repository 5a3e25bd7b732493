"""WAT plugins calling the capability imports (ABI.md section 7.1), for the gateway-level capability tests.

Built on tests/wasm_abi/capability_wat.py (its import signatures and data layout); each is a sync
``eventgateway.event.received`` plugin.
"""

from __future__ import annotations

import msgpack
import wasmtime

from tests.wasm_abi.capability_wat import OUT_AT, Data, imports, labels
from tests.wat import packed, plugin_wat



def _wasm(text: str) -> bytes:
    return bytes(wasmtime.wat2wasm(text))

COUNTER, GAUGE_SET, GAUGE_ADD, HISTOGRAM = 0, 1, 2, 3


def _reject(data: Data, message: str, status: int) -> str:
    """WAT expression: the packed reaction ``{"error": message, "status": status}``."""
    body = msgpack.packb({"error": message, "status": status})
    return packed(data.ptr(body), body)


def rate_limit(limit: int, key: bytes = b"count") -> bytes:
    """``kv_incr(key, 1)`` per event; the event whose count passes ``limit`` (and every later one) is
    rejected with 429 "over the limit of N"; a failed kv call (no count written) rejects with 503."""
    data = Data()
    reject = _reject(data, f"over the limit of {limit}", 429)
    failed = _reject(data, "kv_incr failed", 503)
    react = f"""(block (result i64)
      (if (i32.ne (call $kv_incr {data.ref(key)} (i64.const 1) (i64.const 0) (i32.const {OUT_AT})) (i32.const 0))
        (then (return {failed})))
      (if (result i64) (i64.gt_s (i64.load (i32.const {OUT_AT})) (i64.const {limit}))
        (then {reject}) (else (i64.const 0))))"""
    return _wasm(plugin_wat(imports=imports(("kv_incr",)), react=react, extra=data.wat(),
                              memory='(memory (export "memory") 2)'))


def metric_calls(calls: list[tuple[int, str, dict[str, str], float]]) -> bytes:
    """Makes each ``(kind, name, labels, value)`` `metric` call per event and continues."""
    data = Data()
    body = []
    for kind, name, label_map, value in calls:
        raw = labels(label_map) if label_map else b""
        label_ref = data.ref(raw) if raw else "(i32.const 0) (i32.const 0)"
        body.append(f"(drop (call $metric (i32.const {kind}) {data.ref(name.encode())} {label_ref} "
                    f"(f64.const {value})))")
    react = f"(block (result i64) {' '.join(body)} (i64.const 0))"
    return _wasm(plugin_wat(imports=imports(("metric",)), react=react, extra=data.wat(),
                              memory='(memory (export "memory") 2)'))


def http_call(url: str, method: str = "POST", timeout_ms: int = 5000) -> bytes:
    """One `http_request` per event; continues when the call got an answer (any status), rejects with 502
    when the call failed (denied, timed out, unreachable)."""
    data = Data()
    request = msgpack.packb({"url": url, "method": method, "timeoutMs": timeout_ms})
    failed = _reject(data, "http_request failed", 502)
    react = f"""(block (result i64)
      (if (result i64) (i32.lt_s (call $http_request {data.ref(request)}) (i32.const 0))
        (then {failed}) (else (i64.const 0))))"""
    return _wasm(plugin_wat(imports=imports(("http_request",)), react=react, extra=data.wat(),
                              memory='(memory (export "memory") 2)'))
