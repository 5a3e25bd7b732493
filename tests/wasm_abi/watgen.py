"""Builds ABI v1 test plugins as WAT text.

Most test plugins share the same plumbing (memory, version marker, a bump allocator, a static
subscriptions list) and differ in one export, so tests write only the WAT that differs and
this module wraps it.  Everything is still compiled from WAT source by wasmtime in the run.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgpack

from wasm_abi import EVENT_RECEIVED

SUBS_AT = 1024
REACTION_AT = 2048
HEAP_START = 8192


def wat_bytes(data: bytes) -> str:
    """`data` as a WAT string literal."""
    return '"' + "".join(f"\\{b:02x}" for b in data) + '"'


def packed(at: int, data: bytes) -> str:
    """WAT expression for the packed i64 `(at << 32) | len(data)`."""
    return f"(i64.const {(at << 32) | len(data)})"


def subscriptions_bytes(subs: Iterable[tuple[str, str]]) -> bytes:
    return msgpack.packb([{"eventType": t, "type": m} for t, m in subs])


def plugin_wat(
    *,
    react: str | None = None,
    reaction: Any = None,
    subscriptions: Iterable[tuple[str, str]] | bytes = ((EVENT_RECEIVED, "sync"),),
    imports: str = "",
    extra: str = "",
    init: str | None = None,
    initialize: str | None = None,
    marker: str | None = "eventgateway_abi_v1",
    memory: str = '(memory (export "memory") 1)',
    omit: tuple[str, ...] = (),
) -> str:
    """A complete plugin.  `react` is the body of `react(ptr, len) -> i64` (default: return
    the msgpack `reaction`, or 0 if it is None).  `omit` drops named standard exports."""
    subs = subscriptions if isinstance(subscriptions, bytes) else subscriptions_bytes(subscriptions)
    if react is None:
        if reaction is None:
            react = "(i64.const 0)"
        else:
            body = msgpack.packb(reaction)
            extra += f"\n  (data (i32.const {REACTION_AT}) {wat_bytes(body)})"
            react = packed(REACTION_AT, body)
    parts = [
        "(module",
        imports,
        memory if "memory" not in omit else "  (memory 1)",
        f"  (global $heap (mut i32) (i32.const {HEAP_START}))",
        f"  (data (i32.const {SUBS_AT}) {wat_bytes(subs)})",
    ]
    if marker:
        parts.append(f'  (func (export "{marker}"))')
    if "alloc" not in omit:
        parts.append(
            """  (func $alloc (export "alloc") (param $size i32) (result i32)
    (local $ptr i32) (local $end i32)
    (local.set $ptr (global.get $heap))
    (local.set $end (i32.add (local.get $ptr) (local.get $size)))
    (if (i32.gt_u (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
      (then
        (if (i32.eq (memory.grow (i32.add (i32.div_u (i32.sub (local.get $end)
                  (i32.mul (memory.size) (i32.const 65536))) (i32.const 65536)) (i32.const 1)))
                (i32.const -1))
          (then (return (i32.const 0))))))
    (global.set $heap (local.get $end))
    (local.get $ptr))"""
        )
    if "subscriptions" not in omit:
        parts.append(f'  (func (export "subscriptions") (result i64) {packed(SUBS_AT, subs)})')
    if "react" not in omit:
        parts.append(
            f"""  (func (export "react") (param $ptr i32) (param $len i32) (result i64)
    (local $out i64)
    (local.set $out {react})
    (global.set $heap (i32.const {HEAP_START}))
    (local.get $out))"""
        )
    if init is not None:
        parts.append(f'  (func (export "init") (param $ptr i32) (param $len i32) (result i64) {init})')
    if initialize is not None:
        parts.append(f'  (func (export "_initialize") {initialize})')
    parts.append(extra)
    parts.append(")")
    return "\n".join(p for p in parts if p)
