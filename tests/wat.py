"""The one builder of WAT test plugins, for every suite (and the benchmarks).

Two kinds of plugin, both compiled from WAT text by wasmtime in the run (no toolchain beyond the host's):

- ``plugin_wat(...)``: a bare ABI v1 module (memory, version marker, a bump allocator, a static
  subscriptions list) where a test writes only the WAT that differs — the host tests use it to reach
  every corner of the ABI, including broken modules (``omit``, ``marker``, ``memory``);
- ``kit_plugin(...)`` / ``kit_module(body)``: a plugin written on the WAT guest kit
  (``wasm_abi/pdk/wat/kit.wat``), as a Wasm binary, for the gateway tests that need a plugin answering
  a given reaction, trapping or spinning on a given event type; ``example(name)`` is one of the WAT
  example plugins. Binaries are cached per source text, so each is compiled once per run.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgpack
import wasmtime

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


# -- plugins on the WAT guest kit -------------------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parents[1]
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

#: Kit plugin body: traps (``unreachable``) on incoming events of type "boom", lets everything else through.
TRAP_ON_BOOM = _SUBSCRIBE_RECEIVED + """
  (data (i32.const 2112) "boom")
  (func $on_react (param $event i32) (result i64)
    (if (call $str_eq (call $ce_type (call $incoming (local.get $event))) (i32.const 2112) (i32.const 4))
      (then unreachable))
    (global.get $CONTINUE))
"""

#: Kit plugin body: spins forever (runs out of fuel) on incoming events of type "spin".
SPIN_ON_SPIN = _SUBSCRIBE_RECEIVED + """
  (data (i32.const 2112) "spin")
  (func $on_react (param $event i32) (result i64)
    (if (call $str_eq (call $ce_type (call $incoming (local.get $event))) (i32.const 2112) (i32.const 4))
      (then (loop $forever (br $forever))))
    (global.get $CONTINUE))
"""


@functools.cache
def kit_module(body: str) -> bytes:
    """A module made of the WAT kit followed by ``body`` (the plugin's three ``$on_*`` functions)."""
    return bytes(wasmtime.wat2wasm("(module\n" + KIT.read_text() + "\n" + body + "\n)"))


def kit_plugin(subscriptions: Iterable[tuple[str, str]] = ((EVENT_RECEIVED, "sync"),),
               reaction: dict[str, Any] | None = None, *, only_type: str | None = None,
               trap: bool = False) -> bytes:
    """A kit plugin subscribed to ``subscriptions`` ((system event type, "sync"|"async")) that answers
    ``reaction`` (``None``: continue; any shape, encoded with msgpack here), or traps with ``trap`` — only
    for incoming events of type ``only_type`` when given, continuing for everything else."""
    subscriptions = list(subscriptions)
    segments, subscribe = [], []
    at = 2048
    for event_type, mode in subscriptions:
        encoded = event_type.encode()
        segments.append(f"(data (i32.const {at}) {wat_bytes(encoded)})")
        subscribe.append(f"(call $w_subscription (i32.const {at}) (i32.const {len(encoded)}) "
                         f"(i32.const {0 if mode == 'sync' else 1}))")
        at += 128
    if trap:
        action = "unreachable"
    elif reaction is not None:
        encoded_reaction = msgpack.packb(reaction, use_bin_type=True)
        segments.append(f"(data (i32.const 4096) {wat_bytes(encoded_reaction)})")
        action = f"(return (call $pack (i32.const 4096) (i32.const {len(encoded_reaction)})))"
    else:
        action = "(return (global.get $CONTINUE))"
    if only_type is not None:
        encoded = only_type.encode()
        segments.append(f"(data (i32.const 3968) {wat_bytes(encoded)})")
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
    return kit_module(body)


@functools.cache
def example(name: str) -> bytes:
    """One of the WAT example plugins (logger, guard, enricher) as a Wasm binary."""
    return bytes(wasmtime.wat2wasm((EXAMPLES / f"{name}.wat").read_text()))


def write(directory: Path, name: str, wasm: bytes) -> Path:
    """``wasm`` written to ``directory/name.wasm``; its path."""
    path = directory / f"{name}.wasm"
    path.write_bytes(wasm)
    return path
