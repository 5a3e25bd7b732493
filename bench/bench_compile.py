"""What compiling in a sandboxed child costs (docs/benchmarks.md, "Compiling in a sandboxed child").

    python -m bench.bench_compile [--repeat N]

Rows: a compile of a tiny distinct module by a fresh `python` subprocess per compile (the old way for
modules over 16 KiB) vs. a child forked from the compile server (now every compile), with in-process
compiling for reference; `event-gateway plugin check` of a small module (the whole command); the Go
example (~2.5 MB) compiled through the child, and its peak memory compiled in a throwaway process;
the shape check of the Go example. Needs the examples built: `python -m plugin_examples.build go`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import wasmtime

from wasm_abi import compile_worker, module_shape
from wasm_abi.engine import new_engine

REPO_ROOT = Path(__file__).resolve().parent.parent
STACK = 512 * 1024
GIB = 1024 * 1024 * 1024


def tiny(i: int) -> bytes:
    return bytes(wasmtime.wat2wasm(f'(module (func (export "f") (result i32) i32.const {i}))'))


_SUBPROCESS = textwrap.dedent("""
    import sys, wasmtime
    from wasm_abi.engine import new_engine
    sys.stdout.buffer.write(wasmtime.Module(new_engine(int(sys.argv[1])), sys.stdin.buffer.read()).serialize())
""")

_PEAK = textwrap.dedent("""
    import sys, time, wasmtime
    from wasm_abi.engine import new_engine
    engine = new_engine(int(sys.argv[1]))
    wasm = open(sys.argv[2], "rb").read()
    started = time.monotonic()
    wasmtime.Module(engine, wasm)
    took = time.monotonic() - started
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    print(took, status["VmPeak"].split()[0], status["VmHWM"].split()[0])
""")


def median_ms(times: list[float]) -> str:
    return f"{statistics.median(times) * 1000:.1f} ms (min {min(times) * 1000:.1f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    rows: list[tuple[str, str]] = []

    times = []
    for i in range(args.repeat):
        started = time.monotonic()
        subprocess.run([sys.executable, "-c", _SUBPROCESS, str(STACK)], input=tiny(i), capture_output=True,
                       check=True, env=env)
        times.append(time.monotonic() - started)
    rows.append(("tiny module, a fresh `python` subprocess per compile (before)", median_ms(times)))

    compile_worker.compile_in_child(tiny(-1), STACK, 60, GIB)  # the server starts once
    times = []
    for i in range(args.repeat):
        started = time.monotonic()
        compile_worker.compile_in_child(tiny(1000 + i), STACK, 60, GIB)
        times.append(time.monotonic() - started)
    rows.append(("tiny module, a child forked from the compile server (after)", median_ms(times)))

    engine = new_engine(STACK)
    times = []
    for i in range(args.repeat):
        started = time.monotonic()
        wasmtime.Module(engine, tiny(2000 + i))
        times.append(time.monotonic() - started)
    rows.append(("tiny module compiled in-process (reference only: unbounded)", median_ms(times)))

    guard = REPO_ROOT / "plugin_examples" / "wat" / "guard.wat"
    times = []
    with tempfile.TemporaryDirectory() as cache:
        for _ in range(5):
            started = time.monotonic()
            subprocess.run([sys.executable, "-m", "gateway", "plugin", "check", str(guard)], capture_output=True,
                           check=True, env={**env, "EVENT_GATEWAY_CACHE_DIR": cache})
            times.append(time.monotonic() - started)
    rows.append(("`event-gateway plugin check` of the WAT guard example (whole command)", median_ms(times)))

    go = REPO_ROOT / "build" / "plugins" / "go" / "logger.wasm"
    if go.exists():
        wasm = go.read_bytes()
        started = time.monotonic()
        module_shape.check_shape(wasm)
        rows.append(("shape check of the Go example (in the child, before compiling)",
                     f"{(time.monotonic() - started) * 1000:.0f} ms"))
        times = []
        for _ in range(3):
            started = time.monotonic()
            compile_worker.compile_in_child(wasm, STACK, 120, GIB)
            times.append(time.monotonic() - started)
        rows.append((f"Go example ({len(wasm) / 1e6:.1f} MB) through the child (shape check + compile)",
                     f"{statistics.median(times):.2f} s"))
        out = subprocess.run([sys.executable, "-c", _PEAK, str(STACK), str(go)], capture_output=True, text=True,
                             check=True, env=env).stdout.split()
        rows.append(("Go example compiled in a throwaway process: time, peak address space, peak RSS",
                     f"{float(out[0]):.2f} s, {int(out[1]) // 1024} MiB, {int(out[2]) // 1024} MiB"))

    compile_worker.close_servers()
    width = max(len(r[0]) for r in rows)
    print(f"| {'what':<{width}} | result |")
    print(f"|{'-' * (width + 2)}|---|")
    for what, result in rows:
        print(f"| {what:<{width}} | {result} |")


if __name__ == "__main__":
    main()
