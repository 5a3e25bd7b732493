"""Compiling is bounded: every module compiles in a child under `Limits.compile_memory_bytes` and
`Limits.compile_timeout`, pathological shapes are refused before compiling, and the compile server
that forks those children never leaks a process.

The attack (issue 10, "Critical: compiling is unbounded"): one function of deeply nested `loop`s
with many block parameters and one `br_table` over all of them. Cranelift's work grows with
depth^2 x parameters: the 3 KiB module below takes ~1.4 GB and ~1.4 s to compile, a 5 KiB one
3.3 GB, a 9 KiB one aborts the process. It is only ever compiled here in a throwaway subprocess.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import wasmtime

from wasm_abi import Limits, Plugin, PluginLoadError, Reaction, compile_worker, module_shape
from wasm_abi.limits import MIB

from tests.wat import plugin_wat

REPO_ROOT = Path(__file__).resolve().parents[2]


def nested_loops(*, depth: int, params: int, plain_depth: int = 0, targets: int | None = None,
                 name: str = "attack") -> str:
    """WAT of one function: `plain_depth` plain loops around `depth` nested loops whose type takes and
    returns `params` i32s, and one `br_table` with `targets` targets (default `depth`) cycling over them."""
    ps = " ".join(["i32"] * params)
    lines = [f"(type ${name}_bt (func (param {ps}) (result {ps})))",
             f"(func ${name} (param i32)"]
    lines += ["  loop"] * plain_depth
    lines.append("  " + " ".join(["i32.const 0"] * params))
    lines += [f"  loop (type ${name}_bt)"] * depth
    count = depth if targets is None else targets
    lines.append("  local.get 0 br_table " + " ".join(str(i % depth) for i in range(count)))
    lines += ["  end"] * depth
    lines.append("  " + " ".join(["drop"] * params))
    lines += ["  end"] * plain_depth
    lines.append(")")
    return "\n".join(lines)


def attack_module(depth: int = 500, params: int = 150, tag: str = "") -> bytes:
    """The issue's attack as a complete plugin (it would load if it compiled)."""
    extra = nested_loops(depth=depth, params=params) + (f' (data (i32.const 5000) "{tag}")' if tag else "")
    return bytes(wasmtime.wat2wasm(plugin_wat(extra=extra)))


def bare_attack(depth: int = 500, params: int = 150) -> bytes:
    """Only the attack function (~3 KiB)."""
    return bytes(wasmtime.wat2wasm(f"(module {nested_loops(depth=depth, params=params)})"))


def compliant_attack(functions: int = 1, tag: str = "") -> bytes:
    """The worst shape found that passes every `module_shape` rule: 4000 plain loops around 64 nested
    loops of 32 parameters and a br_table of 16 384 targets (~340 MB and ~0.4 s per function)."""
    funcs = " ".join(
        nested_loops(depth=module_shape.MAX_MULTI_VALUE_BLOCK_DEPTH, params=module_shape.MAX_TYPE_PARAMS,
                     plain_depth=4000, targets=module_shape.MAX_BR_TABLE_TARGETS, name=f"heavy{i}")
        for i in range(functions))
    return bytes(wasmtime.wat2wasm(plugin_wat(extra=f'{funcs} (data (i32.const 5000) "{tag}")')))


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def small_plugin(tag: str) -> bytes:
    return bytes(wasmtime.wat2wasm(plugin_wat(extra=f'(data (i32.const 5000) "{tag}")')))


def assert_next_plugin_is_fast(tag: str, cache_dir: Path) -> None:
    started = time.monotonic()
    plugin = Plugin.from_bytes(small_plugin(tag), name="next", cache_dir=cache_dir)
    assert plugin.react({}) == Reaction()
    assert time.monotonic() - started < 2.0
    plugin.close()


_IN_PROCESS = textwrap.dedent("""
    import os, resource, sys, time, wasmtime
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
    from wasm_abi.engine import new_engine
    wasm = open(sys.argv[1], "rb").read()
    engine = new_engine(512 * 1024)
    print("compiling", flush=True)
    started = time.monotonic()
    wasmtime.Module(engine, wasm)
    print(time.monotonic() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, flush=True)
    os._exit(0)
""")

# Started by a short-lived intermediate process that exits at once, so the compiling process is reaped
# by init, not by the test process: its 1.4 GB never shows in this process's RUSAGE_CHILDREN (which
# other tests read).
_DETACHED = textwrap.dedent("""
    import subprocess, sys
    child = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]], stdout=open(sys.argv[3], "wb"),
                             stderr=subprocess.DEVNULL, start_new_session=True)
    print(child.pid)
""")


@pytest.mark.slow
def test_the_attack_is_pathological_when_compiled_in_process(tmp_path: Path) -> None:
    """The proof that the bound matters: compiled like the host used to (in the process itself, here a
    throwaway process capped at 3 GiB), the 3 KiB module takes over 1 GB."""
    wasm = bare_attack()
    assert len(wasm) < 3.5 * 1024
    (tmp_path / "attack.wasm").write_bytes(wasm)
    out = tmp_path / "out.txt"
    started = subprocess.run([sys.executable, "-c", _DETACHED, _IN_PROCESS, str(tmp_path / "attack.wasm"),
                              str(out)], capture_output=True, text=True, timeout=60, check=True,
                             env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    pid = int(started.stdout)
    deadline = time.monotonic() + 120
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{pid}"), "the in-process compile ran for more than 120 s"
    result = out.read_text().split()
    assert result[:1] == ["compiling"], result  # it started compiling
    if len(result) == 3:
        _, seconds, peak = result
        assert int(peak) > 1024 * MIB, f"compiled in {seconds} s with a peak of {int(peak) // MIB} MiB"
    # else: it died at the 3 GiB cap while compiling, even more pathological


def test_the_attack_is_refused_before_compiling(tmp_path: Path) -> None:
    before = rss_bytes()
    started = time.monotonic()
    with pytest.raises(PluginLoadError) as info:
        Plugin.from_bytes(attack_module(tag="refused"), name="attack", cache_dir=tmp_path)
    assert time.monotonic() - started < 5.0
    assert info.value.kind == "module_shape"
    assert "has 150 parameters, over the limit of 32 per function or block type" in info.value.message
    assert "refused before compiling" in info.value.message
    assert rss_bytes() - before < 50 * MIB
    assert list(tmp_path.glob("*.cwasm")) == []
    assert_next_plugin_is_fast("after-attack", tmp_path)


def test_a_shape_compliant_attack_is_stopped_by_the_memory_limit(tmp_path: Path) -> None:
    """The shape rules let this through; the child's address-space limit stops it, not the host."""
    wasm = compliant_attack(tag="memory")
    before = rss_bytes()
    started = time.monotonic()
    with pytest.raises(PluginLoadError) as info:
        Plugin.from_bytes(wasm, name="heavy", cache_dir=tmp_path, limits=Limits(compile_memory_bytes=400 * MIB))
    assert time.monotonic() - started < 30.0
    assert info.value.kind == "compile_limit"
    assert f"compiling needed more than Limits.compile_memory_bytes = {400 * MIB} bytes" in info.value.message
    assert rss_bytes() - before < 50 * MIB
    assert list(tmp_path.glob("*.cwasm")) == []
    assert_next_plugin_is_fast("after-memory", tmp_path)
    # The limit is what stopped it: under the default (1 GiB) the same module compiles (in the child).
    plugin = Plugin.from_bytes(wasm, name="heavy", cache_dir=tmp_path)
    assert plugin.react({}) == Reaction()
    assert rss_bytes() - before < 150 * MIB  # the compiled code, not the compiler's 340 MB
    plugin.close()


def test_a_slow_compile_is_stopped_by_the_time_limit(tmp_path: Path) -> None:
    # 12 functions of 4000 nested plain loops and a br_table over them: ~0.5 s of compiler CPU and
    # ~140 MB each, so the time limit, not the memory limit, stops it
    targets = " ".join(str(t) for t in range(4000))
    deep = " ".join(f"(func $deep{i} (param i32){' loop' * 4000} local.get 0 br_table {targets}{' end' * 4000})"
                    for i in range(12))
    wasm = bytes(wasmtime.wat2wasm(plugin_wat(extra=deep)))
    started = time.monotonic()
    with pytest.raises(PluginLoadError) as info:
        Plugin.from_bytes(wasm, name="slow", cache_dir=tmp_path, limits=Limits(compile_timeout=0.5))
    elapsed = time.monotonic() - started
    assert elapsed < 5.0, elapsed
    assert info.value.kind == "compile_limit"
    assert "compiling took longer than Limits.compile_timeout = 0.5 s" in info.value.message
    assert_next_plugin_is_fast("after-slow", tmp_path)


def test_hostile_wat_text_is_assembled_under_the_limits(tmp_path: Path) -> None:
    """4 M block parameters of WAT text: ~200 MB to assemble in-process. Text over 64 KiB is assembled in
    the child, so the memory limit (not the host) pays for it."""
    text = "(module (type (func (param " + "i32 " * 4_000_000 + "))))"
    before = rss_bytes()
    with pytest.raises(PluginLoadError) as info:
        Plugin.from_bytes(text.encode(), name="watbomb", cache_dir=tmp_path,
                          limits=Limits(compile_memory_bytes=160 * MIB))
    assert info.value.kind == "compile_limit"
    assert "assembling its WAT text" in info.value.message
    assert f"Limits.compile_memory_bytes = {160 * MIB} bytes" in info.value.message
    assert rss_bytes() - before < 100 * MIB  # the text itself (16 MB) and its bytes copy
    assert_next_plugin_is_fast("after-wat", tmp_path)


def test_large_valid_wat_text_still_loads(tmp_path: Path) -> None:
    padding = "\n".join(f"(func $pad{i} (result i32) (i32.const {i}))" for i in range(3000))
    text = plugin_wat(extra=padding)
    assert len(text) > 64 * 1024  # assembled by the child
    plugin = Plugin.from_bytes(text.encode(), name="bigwat", cache_dir=tmp_path)
    assert plugin.react({}) == Reaction()
    plugin.close()
    with pytest.raises(PluginLoadError, match="not valid WAT") as info:
        Plugin.from_bytes((text + " (oops").encode(), name="badwat", cache_dir=tmp_path)
    assert info.value.kind == "invalid_module"


def test_every_compile_that_is_not_a_cache_hit_runs_in_the_child(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Small modules too (they used to compile in-process under 16 KiB)."""
    def never(*_: object) -> None:
        raise AssertionError("compiled in the host process")

    monkeypatch.setattr(wasmtime, "Module", type("NoModule", (), {"__new__": never,
                                                                   "deserialize": wasmtime.Module.deserialize}))
    plugin = Plugin.from_bytes(small_plugin("child-only"), name="small", cache_dir=tmp_path)
    assert plugin.react({}) == Reaction()
    plugin.close()


def _children_of(pid: int) -> list[tuple[int, str]]:
    """The compile servers (and their compile children) among the children of `pid`, with their
    states: the suite may have other children of its own (etcd, moto, gateways), which are not ours."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and _is_compiler(int(entry)):
            found.append((int(entry), fields[0]))
    return found


def _state(pid: int) -> str | None:
    """The process state letter of `pid` (``Z`` for a zombie), None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def _is_compiler(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"wasm_abi.compile_worker" in f.read()
    except OSError:
        return False


def test_a_killed_compile_server_is_replaced_and_nothing_is_left_behind(tmp_path: Path) -> None:
    Plugin.from_bytes(small_plugin("server-1"), name="one", cache_dir=tmp_path).close()
    [pid, *_] = compile_worker.server_pids()
    os.kill(pid, signal.SIGKILL)
    plugin = Plugin.from_bytes(small_plugin("server-2"), name="two", cache_dir=tmp_path)  # transparently
    assert plugin.react({}) == Reaction()
    plugin.close()
    assert pid not in compile_worker.server_pids()
    assert _state(pid) is None, f"the killed server {pid} was not reaped: {_state(pid)}"
    compile_worker.close_servers()
    assert compile_worker.server_pids() == []
    assert _children_of(os.getpid()) == []  # closed and reaped
    assert_next_plugin_is_fast("after-close", tmp_path)  # started again on demand


_DYING_HOST = textwrap.dedent("""
    import os, sys, wasmtime
    from wasm_abi import Plugin, compile_worker
    sys.path.insert(0, sys.argv[1])
    from tests.wat import plugin_wat
    Plugin.from_bytes(bytes(wasmtime.wat2wasm(plugin_wat())), name="p", cache_dir=sys.argv[2])
    print(*compile_worker.server_pids(), flush=True)
    os._exit(0)  # no atexit, no cleanup: the server must notice on its own
""")


def test_the_compile_server_exits_when_its_host_dies(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", _DYING_HOST, str(REPO_ROOT), str(tmp_path)],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode == 0, done.stderr
    [pid] = [int(p) for p in done.stdout.split()]
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                break  # exited; waiting for init to reap it
        time.sleep(0.05)
    if os.path.exists(f"/proc/{pid}"):
        with open(f"/proc/{pid}/stat") as f:
            assert f.read().rsplit(")", 1)[1].split()[0] == "Z", "the compile server outlived its host"


@pytest.mark.toolchains
@pytest.mark.slow
def test_the_example_plugins_pass_the_shape_rules() -> None:
    from plugin_examples.build import LANGUAGES, build, examples_for

    for lang in LANGUAGES:
        for example in examples_for(lang):
            module_shape.check_shape(build(lang, example).read_bytes())  # a missing toolchain fails loudly


def plugin_with(extra: str) -> bytes:
    return bytes(wasmtime.wat2wasm(plugin_wat(extra=extra)))


@pytest.mark.parametrize(
    "extra, message",
    [
        (f"(type (func (param {' i32' * 33})))", "has 33 parameters, over the limit of 32"),
        (f"(type (func (result {' i32' * 33})))", "has 33 results, over the limit of 32"),
        ("(func (param i32) block local.get 0 br_table" + " 0" * 16_386 + " end)",  # + the default
         "has a br_table with 16385 targets, over the limit of 16384 per br_table"),
        ("(func" + " block" * 4097 + " end" * 4097 + ")", "nests block/loop/if more than 4096 deep"),
        (nested_loops(depth=65, params=1), "nests blocks with parameters or several results more than 64 deep"),
        ("(func (local" + " i32" * 10_001 + "))", "declares more than 10000 locals"),
        ("(func" + " nop" * (512 * 1024 + 1) + ")", "has a body of 524291 bytes, over the limit of 524288"),
        (" ".join(["(func)"] * 100_001), "functions, over the limit of 100000"),
    ],
    ids=["params", "results", "br_table", "depth", "multi-value-depth", "locals", "body", "functions"],
)
def test_each_shape_rule_refuses_before_compiling(extra: str, message: str, tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(PluginLoadError) as info:
        Plugin.from_bytes(plugin_with(extra), name="shape", cache_dir=tmp_path)
    assert info.value.kind == "module_shape"
    assert message in info.value.message
    assert "refused before compiling" in info.value.message
    assert time.monotonic() - started < 5.0


def test_shapes_at_the_limits_load(tmp_path: Path) -> None:
    extra = " ".join([
        f"(type (func (param {' i32' * 32}) (result {' i32' * 32})))",
        "(func (param i32) block local.get 0 br_table" + " 0" * 16_385 + " end)",
        "(func" + " block" * 4096 + " end" * 4096 + ")",
        nested_loops(depth=64, params=2),
        "(func (local" + " i32" * 10_000 + "))",
    ])
    plugin = Plugin.from_bytes(plugin_with(extra), name="edge", cache_dir=tmp_path)
    assert plugin.react({}) == Reaction()
    plugin.close()
