"""Compiling a module in a child process, so that a slow compile can be stopped.

Cranelift compiles a valid module in time roughly linear in its code, with no way to interrupt
it: 400 KiB of small functions take seconds, and a 32 MiB module could take minutes of every
core.  Modules too big to be sure of are compiled here, in a child process at a lower CPU
priority that the host kills at `Limits.compile_timeout`; the child sends back the serialized
module on stdout.  Those bytes come from this very code in a process the host started, never
from outside, so deserializing them is as safe as compiling in-process.

The child runs `run_child` with MAX_STACK_BYTES as its argument and the Wasm binary on stdin.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import wasmtime

_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
EXIT_INVALID = 3  # the module is not valid WebAssembly (the message is on stderr)
_ERROR_TAIL = 4000


class CompileTimeout(Exception):
    """The child did not finish compiling within the time limit (it has been killed)."""


class CompileFailed(Exception):
    """The child could not compile the module; the message says why."""

    def __init__(self, message: str, invalid: bool) -> None:
        super().__init__(message)
        self.invalid = invalid  # True: not valid WebAssembly; False: the worker itself failed


def compile_in_child(wasm: bytes, max_stack_bytes: int, timeout: float) -> bytes:
    """The serialized module compiled by a child for the engine of `max_stack_bytes`."""
    command = [sys.executable, "-c", "from wasm_abi.compile_worker import run_child; run_child()",
               str(max_stack_bytes)]
    # The child imports this very package, wherever the parent found it.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=env) as child:
        try:
            out, err = child.communicate(wasm, timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            raise CompileTimeout(f"compiling took longer than {timeout:g} s") from None
    if child.returncode != 0:
        message = err.decode("utf-8", "replace").strip()[-_ERROR_TAIL:]
        raise CompileFailed(message or f"compiler process exited with status {child.returncode}",
                            invalid=child.returncode == EXIT_INVALID)
    return out


def _compile_stdin() -> int:
    from .engine import engine_for

    try:
        os.nice(10)  # a compile must not starve the gateway's own threads of CPU
    except OSError:
        pass
    engine, _ = engine_for(int(sys.argv[1]))
    wasm = sys.stdin.buffer.read()
    try:
        module = wasmtime.Module(engine, wasm)
    except wasmtime.WasmtimeError as exc:
        sys.stderr.write(str(exc))
        return EXIT_INVALID
    sys.stdout.buffer.write(bytes(module.serialize()))
    return 0


def run_child() -> None:
    """The child's whole life: compile stdin to stdout, then leave at once."""
    status = _compile_stdin()
    sys.stdout.flush()
    sys.stderr.flush()
    # No interpreter finalization: the epoch ticker thread must not race wasmtime's teardown.
    os._exit(status)
