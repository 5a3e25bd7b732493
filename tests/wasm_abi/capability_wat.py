"""WAT plugins that call the capability imports (ABI.md section 7.1) for the host's own tests.

`cap_plugin(body, data)` is a bare ABI v1 module importing the capability functions named, with data
segments at fixed addresses; `react` runs `body`, which stores each call's i32 answer with `store(i, ...)`
at `RESULTS_AT + 4 * i`, and continues. `results(plugin, n)` reads them back from the instance's memory
(the plugin's pool holds one idle instance after a reaction).
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack

from tests.wat import plugin_wat, wat_bytes
from wasm_abi import EVENT_RECEIVED, Plugin, system_event

RESULTS_AT = 512
OUT_AT = 768  # kv_incr writes its int64 here
BUF_AT = 4096  # kv_get / http_response write here
DATA_AT = 16384  # data segments from here on (each at its own offset)

SIGNATURES = {
    "kv_get": "(param i32 i32 i32 i32) (result i32)",
    "kv_set": "(param i32 i32 i32 i32 i64) (result i32)",
    "kv_delete": "(param i32 i32) (result i32)",
    "kv_incr": "(param i32 i32 i64 i64 i32) (result i32)",
    "kv_cas": "(param i32 i32 i32 i32 i32 i32 i64) (result i32)",
    "http_request": "(param i32 i32) (result i32)",
    "http_response": "(param i32 i32) (result i32)",
    "metric": "(param i32 i32 i32 i32 i32 f64) (result i32)",
}
KV = ("kv_get", "kv_set", "kv_delete", "kv_incr", "kv_cas")
HTTP = ("http_request", "http_response")


def imports(names: tuple[str, ...]) -> str:
    return "\n".join(f'  (import "eventgateway" "{n}" (func ${n} {SIGNATURES[n]}))' for n in names)


class Data:
    """Byte strings laid out from DATA_AT: `ref(b)` is the WAT `(i32.const ptr) (i32.const len)` of `b`."""

    def __init__(self) -> None:
        self.segments: dict[int, bytes] = {}
        self.next = DATA_AT

    def ptr(self, data: bytes) -> int:
        for at, existing in self.segments.items():
            if existing == data:
                return at
        at = self.next
        self.segments[at] = data
        self.next += (len(data) + 15) // 16 * 16 + 16
        return at

    def ref(self, data: bytes) -> str:
        return f"(i32.const {self.ptr(data)}) (i32.const {len(data)})"

    def wat(self) -> str:
        return "\n".join(f"  (data (i32.const {at}) {wat_bytes(b)})" for at, b in self.segments.items())


def store(i: int, expr: str) -> str:
    return f"(i32.store (i32.const {RESULTS_AT + 4 * i}) {expr})"


def cap_plugin(body: str, data: Data, names: tuple[str, ...], memory_pages: int = 2) -> str:
    return plugin_wat(
        imports=imports(names),
        react=f"(block (result i64) {body} (i64.const 0))",
        extra=data.wat(),
        memory=f'(memory (export "memory") {memory_pages})',
    )


def react(plugin: Plugin, mode: str = "sync") -> Any:
    return plugin.react(system_event(EVENT_RECEIVED, {"event": {}, "path": "/", "headers": {}}), mode)


def memory(plugin: Plugin, at: int, n: int) -> bytes:
    (instance,) = plugin._pool.snapshot()  # white box: the one idle instance after a reaction
    return bytes(instance._view[at : at + n])


def results(plugin: Plugin, n: int) -> list[int]:
    return list(struct.unpack(f"<{n}i", memory(plugin, RESULTS_AT, 4 * n)))


def out_i64(plugin: Plugin) -> int:
    return int(struct.unpack("<q", memory(plugin, OUT_AT, 8))[0])


def labels(mapping: dict[str, str]) -> bytes:
    return msgpack.packb(mapping)
