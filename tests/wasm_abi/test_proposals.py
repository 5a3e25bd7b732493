"""Only the WebAssembly proposals ABI v1 needs are on; a module using any other is refused at load,
naming the proposal (issue 10, "fuel does not bound wall time": a GC `struct.new` of a large struct
costs 1 fuel and 0.7 s)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import wasmtime

from wasm_abi import Plugin, PluginLoadError, Reaction, engine

from tests.wat import plugin_wat

HOSTILE = {
    # a struct of 10 000 i64 fields allocated in a loop: 1 fuel per allocation, ~80 KB of work each
    "GC": ("(type $big (struct" + " (field (mut i64))" * 10_000 + "))"
           "(func $gc (loop $l (drop (struct.new_default $big)) (br $l)))"),
    "exception handling": "(tag $t) (func $exc (loop $l (try_table (catch_all 0) (throw $t))) )",
    "tail calls": "(func $tail (param i32) (result i32) (return_call $tail (local.get 0)))",
    "function references": "(type $ft (func)) (func $fr (param (ref $ft)) (call_ref $ft (local.get 0)))",
    "relaxed SIMD": "(func $rs (param v128) (result v128) (i8x16.relaxed_swizzle (local.get 0) (local.get 0)))",
    "threads": "(func $th (param i32) (result i32) (i32.atomic.load (local.get 0)))",
    "wide arithmetic": ("(func $wa (param i64 i64 i64 i64) (result i64 i64) (i64.add128 (local.get 0) "
                        "(local.get 1) (local.get 2) (local.get 3)))"),
    "stack switching": "(type $ft (func)) (type $ct (cont $ft))",
    "multi-memory": "(memory $second 1)",
}


def wasm_of(extra: str = "", memory: str | None = None) -> bytes:
    kwargs = {"memory": memory} if memory is not None else {}
    return bytes(wasmtime.wat2wasm(plugin_wat(extra=extra, **kwargs)))


@pytest.mark.parametrize("proposal", sorted(HOSTILE))
def test_a_module_using_a_turned_off_proposal_is_refused_naming_it(proposal: str, tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(PluginLoadError) as info:
        Plugin.from_bytes(wasm_of(HOSTILE[proposal]), name="hostile", cache_dir=tmp_path)
    assert time.monotonic() - started < 5.0
    assert info.value.kind == "unsupported_feature", info.value.message
    assert f"uses the {proposal}" in info.value.message
    assert "which this host turns off" in info.value.message
    assert list(tmp_path.glob("*.cwasm")) == []
    # the next normal plugin loads and reacts at once
    plugin = Plugin.from_bytes(wasm_of('(data (i32.const 5000) "next")'), name="next", cache_dir=tmp_path)
    assert plugin.react({}) == Reaction()
    plugin.close()


@pytest.mark.parametrize(
    "memory, proposal",
    [
        ('(memory (export "memory") i64 1)', "memory64"),
        ('(memory (export "memory") 1 1 shared)', "threads"),
        ('(memory (export "memory") 1 (pagesize 1))', "custom page sizes"),
    ],
)
def test_memories_of_turned_off_proposals_are_refused(memory: str, proposal: str, tmp_path: Path) -> None:
    with pytest.raises(PluginLoadError) as info:
        Plugin.from_bytes(wasm_of(memory=memory), name="mem", cache_dir=tmp_path)
    assert info.value.kind == "unsupported_feature"
    assert f"uses the {proposal}" in info.value.message


def test_importing_a_second_memory_is_refused(tmp_path: Path) -> None:
    text = plugin_wat().replace("(module", '(module (import "env" "mem" (memory 1))', 1)
    with pytest.raises(PluginLoadError) as info:
        Plugin.from_bytes(text.encode(), name="twomem", cache_dir=tmp_path)
    assert info.value.kind == "unsupported_feature"
    assert "multi-memory" in info.value.message


def test_externref_needs_the_gc_runtime_and_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PluginLoadError) as info:
        Plugin.from_bytes(wasm_of("(func $x (param externref))"), name="ext", cache_dir=tmp_path)
    assert info.value.kind == "unsupported_feature"
    assert "GC" in info.value.message


ENABLED = {
    "multi-value": "(func $mv (result i32 i32) (i32.const 1) (i32.const 2)) (func $mv2 (drop (drop (call $mv))))",
    "bulk memory": "(func $bm (memory.fill (i32.const 60000) (i32.const 0) (i32.const 16)))",
    "reference types": ("(table $t2 1 funcref) (elem declare func $rt) (func $rt (table.set $t2 (i32.const 0) "
                        "(ref.func $rt)) (call_indirect $t2 (i32.const 0)))"),
    "SIMD": "(func $simd (param v128) (result v128) (i8x16.add (local.get 0) (local.get 0)))",
    "sign extension": "(func $se (param i32) (result i32) (i32.extend8_s (local.get 0)))",
    "non-trapping float-to-int": "(func $sat (param f64) (result i32) (i32.trunc_sat_f64_s (local.get 0)))",
    "mutable globals": '(global $g (export "counter") (mut i32) (i32.const 0))',
}


@pytest.mark.parametrize("feature", sorted(ENABLED))
def test_enabled_proposals_load(feature: str, tmp_path: Path) -> None:
    plugin = Plugin.from_bytes(wasm_of(ENABLED[feature]), name="enabled", cache_dir=tmp_path)
    assert plugin.react({}) == Reaction()
    plugin.close()


@pytest.mark.toolchains
@pytest.mark.slow
def test_the_example_plugins_of_all_six_languages_load() -> None:
    from plugin_examples.build import LANGUAGES, build

    assert set(LANGUAGES) == {"wat", "c", "zig", "rust", "assemblyscript", "go"}
    for lang in LANGUAGES:
        plugin = Plugin.from_file(build(lang, "logger"), name=f"logger-{lang}")
        assert plugin.subscriptions, lang
        plugin.close()


def test_the_engine_turns_every_other_proposal_off_and_the_cache_key_names_the_set() -> None:
    on = {name for name, enabled in engine.PROPOSALS.items() if enabled}
    assert on == {"wasm_multi_value", "wasm_bulk_memory", "wasm_reference_types", "wasm_simd"}
    for off in ("wasm_gc", "gc_support", "wasm_exceptions", "wasm_function_references", "wasm_tail_call",
                "wasm_stack_switching", "wasm_relaxed_simd", "wasm_threads", "wasm_memory64",
                "wasm_multi_memory", "wasm_custom_page_sizes", "wasm_wide_arithmetic"):
        assert engine.PROPOSALS[off] is False
    key = engine.settings_key(512 * 1024)
    assert "features=wasm_bulk_memory,wasm_multi_value,wasm_reference_types,wasm_simd" in key
    assert "shape=" in key
