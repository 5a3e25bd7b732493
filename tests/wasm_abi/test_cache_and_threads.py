"""The on-disk compile cache (authenticated) and concurrent reactions from many threads."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import wasmtime

from wasm_abi import Limits, Plugin, PluginFault, PluginLoadError, Reaction, module_cache

from tests.wat import plugin_wat

ECHO = "(i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32)) (i64.extend_i32_u (local.get $len)))"


def unique_module(tag: str) -> bytes:
    """A module no other test compiled (a distinct data segment changes its hash)."""
    return bytes(wasmtime.wat2wasm(plugin_wat(extra=f'(data (i32.const 5000) "{tag}")')))


def entries(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.cwasm"))


def test_compiled_module_is_cached_on_disk_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = unique_module("reuse")
    Plugin.from_bytes(data, name="a", cache_dir=tmp_path)
    [entry] = entries(tmp_path)
    key = tmp_path / "cache.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    module_cache.clear_memory_cache()
    compiled: list[bytes] = []
    real_compile = module_cache.compile_in_child

    def counting_compile(wasm: bytes, *args: object) -> bytes:
        compiled.append(wasm)
        return real_compile(wasm, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(module_cache, "compile_in_child", counting_compile)
    plugin = Plugin.from_bytes(data, name="b", cache_dir=tmp_path)
    assert compiled == []  # loaded from disk, not recompiled
    assert plugin.react({}) == Reaction()
    assert entries(tmp_path) == [entry]


@pytest.mark.parametrize("damage", ["flip_payload", "flip_tag", "truncate", "garbage", "new_key", "public_key"])
def test_tampered_cache_entries_are_never_deserialized(tmp_path: Path, damage: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    data = unique_module(f"tamper-{damage}")
    Plugin.from_bytes(data, name="a", cache_dir=tmp_path)
    [entry] = entries(tmp_path)
    blob = bytearray(entry.read_bytes())
    key = tmp_path / "cache.key"
    if damage == "flip_payload":
        blob[-100] ^= 0xFF
    elif damage == "flip_tag":
        blob[len(module_cache.ENTRY_MAGIC) + 3] ^= 0x01
    elif damage == "truncate":
        blob = blob[: len(blob) // 2]
    elif damage == "garbage":
        blob = bytearray(os.urandom(len(blob)))
    elif damage == "new_key":
        key.write_bytes(os.urandom(32))
    elif damage == "public_key":
        key.chmod(0o644)
    entry.write_bytes(bytes(blob))
    tampered = bytes(blob[len(module_cache.ENTRY_MAGIC) + 32:])
    module_cache.clear_memory_cache()
    deserialized: list[bytes] = []
    real = wasmtime.Module.deserialize

    def spy(engine: wasmtime.Engine, encoded: bytes) -> wasmtime.Module:
        deserialized.append(bytes(encoded))
        return real(engine, encoded)

    compiled: list[bytes] = []
    real_compile = module_cache.compile_in_child

    def recording_compile(wasm: bytes, *args: object) -> bytes:
        compiled.append(real_compile(wasm, *args))  # type: ignore[arg-type]
        return compiled[-1]

    monkeypatch.setattr(module_cache, "compile_in_child", recording_compile)

    wasmtime.Module.deserialize = staticmethod(spy)  # type: ignore[method-assign]
    try:
        plugin = Plugin.from_bytes(data, name="b", cache_dir=tmp_path)
    finally:
        wasmtime.Module.deserialize = real  # type: ignore[method-assign]
    # recompiled instead: the only bytes deserialized are the compile child's fresh output
    assert len(compiled) == 1 and deserialized == compiled
    if damage == "flip_payload":
        assert tampered not in deserialized
    assert plugin.react({}) == Reaction()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    # the rewritten entry is good again
    module_cache.clear_memory_cache()
    assert Plugin.from_bytes(data, name="c", cache_dir=tmp_path).react({}) == Reaction()


def test_unwritable_cache_dir_still_loads(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert Plugin.from_bytes(unique_module("nodir"), name="a", cache_dir=blocker / "sub").react({}) == Reaction()


def test_reactions_from_many_threads_at_once(make_plugin: Callable[..., Plugin]) -> None:
    """Each thread's event is echoed back: no crosstalk between instances, no shared Store."""
    plugin = make_plugin(react=ECHO, limits=Limits(pool_size=3))

    def work(i: int) -> None:
        for j in range(40):
            message = f"thread {i} call {j} " + "x" * (i * 100)
            mode = "async" if j % 2 else "sync"
            assert plugin.react({"error": message}, mode=mode) == Reaction(message)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))
    assert sum(plugin.state.reactions.values()) == 320


def test_faults_in_some_threads_do_not_disturb_others(make_plugin: Callable[..., Plugin]) -> None:
    bad = "(if (result i64) (i32.gt_u (local.get $len) (i32.const 100)) (then unreachable) (else {echo}))"
    plugin = make_plugin(react=bad.format(echo=ECHO), limits=Limits(pool_size=2, quarantine_after=1000,
                                                                     fault_window_max=1000))
    faults = 0
    lock = threading.Lock()

    def work(i: int) -> None:
        nonlocal faults
        for j in range(30):
            if (i + j) % 3 == 0:
                try:
                    plugin.react({"error": "y" * 200})
                except PluginFault as fault:
                    assert fault.kind == "trap"
                    with lock:
                        faults += 1
            else:
                assert plugin.react({"error": f"{i}-{j}"}) == Reaction(f"{i}-{j}")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(work, range(4)))
    assert faults == 40
    assert plugin.state.faults == {"trap": 40}


def big_module(tag: str, functions: int = 1200) -> bytes:
    """A valid plugin of many small functions (~30 KiB)."""
    extra = "\n".join(f"(func $f{i} (param i32) (result i32) (i32.add (local.get 0) (i32.const {i})))"
                      for i in range(functions))
    data = bytes(wasmtime.wat2wasm(plugin_wat(extra=f'{extra} (data (i32.const 5000) "{tag}")')))
    return data


def test_big_module_compiles_in_a_child_and_is_cached(tmp_path: Path) -> None:
    data = big_module("child-ok")
    plugin = Plugin.from_bytes(data, name="big", cache_dir=tmp_path)
    assert plugin.react({}) == Reaction()
    [entry] = entries(tmp_path)  # written by the parent, authenticated like any other entry
    module_cache.clear_memory_cache()
    assert Plugin.from_bytes(data, name="again", cache_dir=tmp_path).react({}) == Reaction()
    assert entries(tmp_path) == [entry]


def test_compile_over_the_time_limit_is_stopped(tmp_path: Path) -> None:
    """No compiler process finishes in 10 ms (starting Python alone takes longer)."""
    with pytest.raises(PluginLoadError, match=r"compiling took longer than Limits.compile_timeout = 0.01 s") as info:
        Plugin.from_bytes(big_module("child-slow"), name="slow", cache_dir=tmp_path,
                          limits=Limits(compile_timeout=0.01))
    assert info.value.kind == "compile_limit"
    assert entries(tmp_path) == []
    assert Plugin.from_bytes(unique_module("after-slow"), name="ok", cache_dir=tmp_path).react({}) == Reaction()


def test_invalid_big_module_is_refused_by_the_child(tmp_path: Path) -> None:
    data = big_module("child-bad")
    broken = data[:-40]  # cut inside the code section: still starts with \0asm, no longer valid
    with pytest.raises(PluginLoadError, match="is not a valid WebAssembly module") as info:
        Plugin.from_bytes(broken, name="broken", cache_dir=tmp_path)
    assert info.value.kind == "invalid_module"
