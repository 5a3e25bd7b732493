"""Test plugins written in WAT on top of the WAT guest kit, built with ``wasmtime.wat2wasm`` in the
test run (no toolchain beyond the host's), cached per source text so each is compiled once."""

from __future__ import annotations

import functools
from pathlib import Path

import wasmtime

REPO_ROOT = Path(__file__).resolve().parents[3]
KIT = REPO_ROOT / "wasm_abi" / "pdk" / "wat" / "kit.wat"
EXAMPLES = REPO_ROOT / "plugin_examples" / "wat"

_SUBSCRIBE_RECEIVED = """
  (data (i32.const 2048) "eventgateway.event.received")   ;; 27
  (func $on_subscriptions (result i64)
    (call $w_begin)
    (call $w_array (i32.const 1))
    (call $w_subscription (i32.const 2048) (i32.const 27) (i32.const 0))
    (call $w_end))
  (func $on_init (param $config i32) (result i64) (global.get $CONTINUE))
"""

#: Traps (``unreachable``) on incoming events of type "boom", lets everything else through.
TRAP_ON_BOOM = _SUBSCRIBE_RECEIVED + """
  (data (i32.const 2112) "boom")
  (func $on_react (param $event i32) (result i64)
    (if (call $str_eq (call $ce_type (call $incoming (local.get $event))) (i32.const 2112) (i32.const 4))
      (then unreachable))
    (global.get $CONTINUE))
"""

#: Spins forever (runs out of fuel) on incoming events of type "spin".
SPIN_ON_SPIN = _SUBSCRIBE_RECEIVED + """
  (data (i32.const 2112) "spin")
  (func $on_react (param $event i32) (result i64)
    (if (call $str_eq (call $ce_type (call $incoming (local.get $event))) (i32.const 2112) (i32.const 4))
      (then (loop $forever (br $forever))))
    (global.get $CONTINUE))
"""


@functools.cache
def kit_module(body: str) -> bytes:
    """A module made of the WAT kit followed by ``body`` (the plugin's three functions)."""
    return bytes(wasmtime.wat2wasm("(module\n" + KIT.read_text() + "\n" + body + "\n)"))


@functools.cache
def example(name: str) -> bytes:
    """One of the WAT example plugins (logger, guard, enricher) as a Wasm binary."""
    return bytes(wasmtime.wat2wasm((EXAMPLES / f"{name}.wat").read_text()))


def write(directory: Path, name: str, wasm: bytes) -> Path:
    path = directory / f"{name}.wasm"
    path.write_bytes(wasm)
    return path


def _wat_bytes(data: bytes) -> str:
    return "".join(f"\\{b:02x}" for b in data)


def constant_plugin(reaction: dict | None, subscriptions: list[tuple[str, str]] | None = None) -> bytes:
    """A plugin that answers every event with the same reaction (``None``: continue). The reaction is
    encoded with msgpack here and embedded as a data segment, so any reaction shape can be tested."""
    import msgpack

    subscriptions = subscriptions or [("eventgateway.event.received", "sync")]
    segments, subscribe = [], []
    at = 2048
    for event_type, mode in subscriptions:
        encoded = event_type.encode()
        segments.append(f'(data (i32.const {at}) "{_wat_bytes(encoded)}")')
        subscribe.append(f"(call $w_subscription (i32.const {at}) (i32.const {len(encoded)}) "
                         f"(i32.const {0 if mode == 'sync' else 1}))")
        at += 128
    react = "(global.get $CONTINUE)"
    if reaction is not None:
        packed = msgpack.packb(reaction, use_bin_type=True)
        segments.append(f'(data (i32.const 4096) "{_wat_bytes(packed)}")')
        react = f"(call $pack (i32.const 4096) (i32.const {len(packed)}))"
    body = "\n".join(segments) + f"""
  (func $on_subscriptions (result i64)
    (call $w_begin)
    (call $w_array (i32.const {len(subscriptions)}))
    {' '.join(subscribe)}
    (call $w_end))
  (func $on_init (param $config i32) (result i64) (global.get $CONTINUE))
  (func $on_react (param $event i32) (result i64) {react})
"""
    return kit_module(body)

