"""Test plugins for the event path, written in WAT on the guest kit and compiled by wasmtime in the run."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import msgpack
import wasmtime

KIT = Path(__file__).resolve().parents[3] / "wasm_abi" / "pdk" / "wat" / "kit.wat"


def _hex(data: bytes) -> str:
    return "".join(f"\\{b:02x}" for b in data)


@functools.cache
def _compile(source: str) -> bytes:
    return bytes(wasmtime.wat2wasm(source))


def plugin(subscriptions: list[tuple[str, str]], reaction: dict[str, Any] | None = None, *,
           only_type: str | None = None, trap: bool = False) -> bytes:
    """A plugin subscribed to ``subscriptions`` ((system event type, "sync"|"async")) that answers
    ``reaction`` (or traps, with ``trap``) — only for incoming events of type ``only_type`` when given,
    continuing for everything else."""
    segments, subscribe = [], []
    at = 2048
    for event_type, mode in subscriptions:
        encoded = event_type.encode()
        segments.append(f'(data (i32.const {at}) "{_hex(encoded)}")')
        subscribe.append(f"(call $w_subscription (i32.const {at}) (i32.const {len(encoded)}) "
                         f"(i32.const {0 if mode == 'sync' else 1}))")
        at += 128
    if trap:
        action = "unreachable"
    elif reaction is not None:
        packed = msgpack.packb(reaction, use_bin_type=True)
        segments.append(f'(data (i32.const 4096) "{_hex(packed)}")')
        action = f"(return (call $pack (i32.const 4096) (i32.const {len(packed)})))"
    else:
        action = "(return (global.get $CONTINUE))"
    if only_type is not None:
        encoded = only_type.encode()
        segments.append(f'(data (i32.const 3968) "{_hex(encoded)}")')
        action = (f"(if (call $str_eq (call $ce_type (call $incoming (local.get $event))) (i32.const 3968) "
                  f"(i32.const {len(encoded)})) (then {action}))")
    body = "\n".join(segments) + f"""
  (func $on_subscriptions (result i64)
    (call $w_begin)
    (call $w_array (i32.const {len(subscriptions)}))
    {' '.join(subscribe)}
    (call $w_end))
  (func $on_init (param $config i32) (result i64) (global.get $CONTINUE))
  (func $on_react (param $event i32) (result i64) {action} (global.get $CONTINUE))
"""
    return _compile("(module\n" + KIT.read_text() + "\n" + body + "\n)")
