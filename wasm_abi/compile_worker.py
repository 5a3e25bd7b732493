"""Compiling (and assembling large WAT text) in a child process under a memory limit and a timeout.

Cranelift's time and memory grow with the shape of a function, not its size (a 3 KiB module of
nested loops with block parameters needs 1.4 GB; 5 KiB needs 3.3 GB and 8.5 s), and a compile
cannot be interrupted.  So no untrusted module is ever compiled in the host process: every
compile that is not a verified cache hit runs in a child process that

- runs `module_shape.check_shape` first (pathological shapes are refused before compiling),
- has an address-space limit (`RLIMIT_AS` = `Limits.compile_memory_bytes`): an allocation over
  it fails and the child dies, which the host reports as kind `compile_limit`,
- is killed at `Limits.compile_timeout` (also `compile_limit`),
- runs at a lower CPU priority (nice 10), so a compile does not starve the gateway's threads.

Starting a Python interpreter that imports wasmtime costs ~100-300 ms, too much per compile (the
test suite compiles hundreds of small modules, and `plugin check` must stay well under a second).
So one long-lived *compile server* process per host process (two when two threads compile at
once) is started on first use.  It imports wasmtime and this package but creates no engine and
compiles nothing itself: it is single-threaded and only forks one child per request, so forking
it is safe.  The forked child applies the limits, builds its engine with `engine.new_engine` (the
very settings of the host's `engine_for`, so the code it serializes deserializes there), does the
job and writes the result to a pipe, then leaves with `os._exit`.  The server enforces the
timeout (it waits on the child's pipes with a deadline and kills it with SIGKILL at the deadline,
then reaps it: no zombies) and answers the host; the host kills the whole server when it does
not answer within the timeout plus a grace period.  A server that died (killed, crashed) is
replaced transparently on the next request; a server whose host died sees end-of-file on its
stdin and exits, killing a child in progress; a child whose server died gets SIGKILL
(`PR_SET_PDEATHSIG`).  Servers are closed at interpreter exit (`close_servers`, bounded: never
hangs shutdown).

Deserializing the bytes a child sends back is safe: they come from this very code, in a process
the host started from its own interpreter, over a pipe only that process holds -- never from
the module's author or from disk (disk entries are authenticated separately, `module_cache`).
Deserializing is as safe as compiling in-process would have been, minus the unbounded compile.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
_ERROR_TAIL = 4000
#: The host waits this long past `timeout` for the server's answer before killing the server.
SERVER_GRACE_SECONDS = 10.0
#: How many compile servers may run at once (threads compiling concurrently each get one).
MAX_SERVERS = 2
#: Cranelift's parallel compile threads in a child; fixed so that the child's address space
#: (each thread has its own stack and malloc arena) does not grow with the machine's core count.
COMPILE_THREADS = max(1, min(2, os.cpu_count() or 1))
_HEADER = struct.Struct(">IQ")  # header length, payload length


class CompileTimeout(Exception):
    """The child did not finish within `timeout` seconds (it has been killed)."""

    def __init__(self, timeout: float) -> None:
        super().__init__(f"compiling took longer than Limits.compile_timeout = {timeout:g} s")
        self.timeout = timeout


class CompileMemoryExceeded(Exception):
    """The child needed more memory than its limit (it failed an allocation and died)."""

    def __init__(self, memory_bytes: int, detail: str) -> None:
        super().__init__(f"compiling needed more than Limits.compile_memory_bytes = {memory_bytes} bytes"
                         + (f" ({detail})" if detail else ""))
        self.memory_bytes = memory_bytes


class ShapeRefused(Exception):
    """`module_shape.check_shape` refused the module; nothing was compiled."""


class CompileFailed(Exception):
    """The child could not compile the module; the message says why."""

    def __init__(self, message: str, invalid: bool) -> None:
        super().__init__(message)
        self.invalid = invalid  # True: not valid WebAssembly; False: the compiler itself failed


# -- framing: one JSON header and one binary payload per message -----------------------------------


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _frame(header: dict[str, Any], payload: bytes = b"") -> bytes:
    head = json.dumps(header).encode()
    return _HEADER.pack(len(head), len(payload)) + head + payload


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes | None:
    """`n` bytes from `fd`, or None at end of file; TimeoutError past `deadline`."""
    chunks = []
    while n:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise TimeoutError
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read_frame(fd: int, deadline: float | None = None) -> tuple[dict[str, Any], bytes] | None:
    head = _read_exact(fd, _HEADER.size, deadline)
    if head is None:
        return None
    head_len, payload_len = _HEADER.unpack(head)
    header = _read_exact(fd, head_len, deadline)
    payload = _read_exact(fd, payload_len, deadline) if payload_len else b""
    if header is None or payload is None:
        return None
    return json.loads(header), payload


# -- the host side ------------------------------------------------------------------------------------


class _Server:
    """One compile server process and its pipes; used by one thread at a time."""

    def __init__(self) -> None:
        env = dict(os.environ)
        # The server imports this very package, wherever the host found it.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        env["RAYON_NUM_THREADS"] = str(COMPILE_THREADS)
        env["MALLOC_ARENA_MAX"] = "2"  # reserved arenas count against RLIMIT_AS
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from wasm_abi.compile_worker import serve; serve()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
            start_new_session=True,  # no terminal signals: the server goes when its stdin closes
        )

    def request(self, header: dict[str, Any], payload: bytes, wait: float) -> tuple[dict[str, Any], bytes] | None:
        """Send one job and wait up to `wait` s for its answer; None when the server is gone."""
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            _write_all(self.process.stdin.fileno(), _frame(header, payload))
        except (BrokenPipeError, OSError):
            return None
        return _read_frame(self.process.stdout.fileno(), time.monotonic() + wait)

    def close(self, timeout: float = 2.0) -> None:
        """Close stdin (the server exits at once); kill it if it does not, and reap it."""
        try:
            if self.process.stdin is not None:
                self.process.stdin.close()
            self.process.wait(timeout)
        except (OSError, subprocess.TimeoutExpired):
            self.kill()
        finally:
            if self.process.stdout is not None:
                self.process.stdout.close()

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # the server and a child it is running
        except OSError:
            pass
        self.process.kill()
        self.process.wait()


class _Pool:
    """Idle compile servers, started on demand (at most MAX_SERVERS)."""

    def __init__(self) -> None:
        self._idle: list[_Server] = []
        self._all: list[_Server] = []
        self._cond = threading.Condition()
        self._closed = False

    def acquire(self) -> _Server:
        with self._cond:
            while not self._idle and len(self._all) >= MAX_SERVERS:
                self._cond.wait()
            if self._idle:
                return self._idle.pop()
            server = _Server()
            self._all.append(server)
            return server

    def release(self, server: _Server, healthy: bool) -> None:
        with self._cond:
            if healthy and not self._closed:
                self._idle.append(server)
            else:
                self._all.remove(server)
            self._cond.notify()
        if not healthy:
            server.kill()

    def close(self) -> None:
        with self._cond:
            servers, self._idle, self._all = list(self._all), [], []
            self._cond.notify_all()
        for server in servers:
            server.close()

    def pids(self) -> list[int]:
        with self._cond:
            return [s.process.pid for s in self._all]


_POOL = _Pool()


def close_servers() -> None:
    """Stop every compile server of this process (bounded; they restart on the next compile)."""
    _POOL.close()


def server_pids() -> list[int]:
    """The process ids of the running compile servers (tests use them)."""
    return _POOL.pids()


atexit.register(close_servers)
# A forked copy of this process must not share the parent's servers (their pipes are the parent's).
os.register_at_fork(after_in_child=lambda: globals().__setitem__("_POOL", _Pool()))


def _run(op: str, payload: bytes, *, max_stack_bytes: int, memory_bytes: int, timeout: float) -> bytes:
    header = {"op": op, "stack": max_stack_bytes, "memory": memory_bytes, "timeout": timeout}
    for _attempt in range(2):
        server = _POOL.acquire()
        healthy = False
        try:
            answer = server.request(header, payload, timeout + SERVER_GRACE_SECONDS)
            healthy = answer is not None
        except TimeoutError:
            raise CompileTimeout(timeout) from None  # the server is killed below
        finally:
            _POOL.release(server, healthy)
        if answer is not None:
            return _result(answer, memory_bytes, timeout)
        # The server died (killed or crashed) before answering: a fresh one tries once more.
    raise CompileFailed("the compile server process died twice in a row", invalid=False)


def _result(answer: tuple[dict[str, Any], bytes], memory_bytes: int, timeout: float) -> bytes:
    header, payload = answer
    status = header.get("status")
    message = str(header.get("message", ""))[-_ERROR_TAIL:]
    if status == "ok":
        return payload
    if status == "timeout":
        raise CompileTimeout(timeout)
    if status == "memory":
        raise CompileMemoryExceeded(memory_bytes, message)
    if status == "shape":
        raise ShapeRefused(message)
    if status == "invalid":
        raise CompileFailed(message, invalid=True)
    raise CompileFailed(message or f"compiler process failed ({status})", invalid=False)


def compile_in_child(wasm: bytes, max_stack_bytes: int, timeout: float, memory_bytes: int) -> bytes:
    """The serialized module, shape-checked and compiled by a child for `engine.new_engine(max_stack_bytes)`.

    Raises `ShapeRefused`, `CompileFailed`, `CompileTimeout` or `CompileMemoryExceeded`.
    """
    return _run("compile", wasm, max_stack_bytes=max_stack_bytes, memory_bytes=memory_bytes, timeout=timeout)


def wat2wasm_in_child(text: bytes, timeout: float, memory_bytes: int) -> bytes:
    """WAT text assembled to a Wasm binary by a child (under the same limits as a compile).

    Raises `CompileFailed(invalid=True)` for invalid text, `CompileTimeout`, `CompileMemoryExceeded`.
    """
    return _run("wat2wasm", text, max_stack_bytes=0, memory_bytes=memory_bytes, timeout=timeout)


# -- the server side -----------------------------------------------------------------------------------


def serve() -> None:
    """The compile server's whole life: one forked child per request on stdin, until end of file."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Loaded once here so every forked child starts with them; no engine is created here.
    import wasmtime  # noqa: F401

    from . import engine, module_shape  # noqa: F401

    while True:
        try:
            request = _read_frame(0)
        except (OSError, ValueError):
            request = None
        if request is None:
            os._exit(0)
        header, payload = request
        try:
            answer = _serve_one(header, payload)
        except Exception as exc:  # noqa: BLE001 - answer every request, whatever went wrong
            answer = _frame({"status": "failed", "message": f"compile server error: {exc!r}"})
        try:
            _write_all(1, answer)
        except OSError:
            os._exit(0)


def _serve_one(header: dict[str, Any], payload: bytes) -> bytes:
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        status = 70
        try:
            os.close(out_r)
            os.close(err_r)
            os.dup2(err_w, 2)
            _child(header, payload, out_w)
            status = 0
        finally:
            os._exit(status)
    os.close(out_w)
    os.close(err_w)
    deadline = time.monotonic() + float(header["timeout"])
    out, err = bytearray(), bytearray()
    open_fds = {out_r: out, err_r: err}
    timed_out = False
    try:
        while open_fds:
            remaining = deadline - time.monotonic()
            ready = select.select([*open_fds, 0], [], [], max(0.0, remaining))[0] if remaining > 0 else []
            if not ready:
                timed_out = True
                os.kill(pid, signal.SIGKILL)
                break
            if 0 in ready:  # the host closed our stdin (it exited): stop everything
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                os._exit(0)
            for fd in ready:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    os.close(fd)
                    del open_fds[fd]
                elif fd == err_r:
                    err += chunk
                    del err[:-_ERROR_TAIL]
                else:
                    out += chunk
    finally:
        for fd in open_fds:
            os.close(fd)
        _, wait_status = os.waitpid(pid, 0)  # reaped here: never a zombie
    if timed_out:
        return _frame({"status": "timeout"})
    if os.WIFEXITED(wait_status) and os.WEXITSTATUS(wait_status) == 0 and len(out) >= _HEADER.size:
        return bytes(out)  # the child's own frame
    stderr = err.decode("utf-8", "replace").strip()
    if os.WIFSIGNALED(wait_status):
        how = f"the compiler process died of {signal.Signals(os.WTERMSIG(wait_status)).name}"
    else:
        how = f"the compiler process exited with status {os.WEXITSTATUS(wait_status)}"
    detail = f"{how}: {stderr}" if stderr else how
    # Under RLIMIT_AS a failed allocation aborts Rust code ("memory allocation of N bytes failed");
    # an OOM killer (a cgroup limit) sends SIGKILL.
    out_of_memory = ("memory allocation of" in stderr or "MemoryError" in stderr
                     or (os.WIFSIGNALED(wait_status) and os.WTERMSIG(wait_status) == signal.SIGKILL))
    return _frame({"status": "memory" if out_of_memory else "failed", "message": detail})


def _set_parent_death_signal() -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the server
    except (OSError, AttributeError):
        pass


def _child(header: dict[str, Any], payload: bytes, out_fd: int) -> None:
    import resource

    import wasmtime

    from .engine import new_engine
    from .module_shape import ShapeError, check_shape

    _set_parent_death_signal()
    try:
        os.nice(10)  # a compile must not starve the gateway's own threads of CPU
    except OSError:
        pass
    memory = int(header["memory"])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    try:
        if header["op"] == "wat2wasm":
            try:
                answer = _frame({"status": "ok"}, bytes(wasmtime.wat2wasm(payload.decode("utf-8"))))
            except wasmtime.WasmtimeError as exc:
                answer = _frame({"status": _error_status(str(exc)), "message": str(exc)})
        else:
            try:
                check_shape(payload)
            except ShapeError as exc:
                _write_all(out_fd, _frame({"status": "shape", "message": str(exc)}))
                return
            engine = new_engine(int(header["stack"]))
            try:
                module = wasmtime.Module(engine, payload)
            except wasmtime.WasmtimeError as exc:
                answer = _frame({"status": _error_status(str(exc)), "message": str(exc)})
            else:
                answer = _frame({"status": "ok"}, bytes(module.serialize()))
    except MemoryError:
        answer = _frame({"status": "memory", "message": "MemoryError"})
    _write_all(out_fd, answer)


def _error_status(message: str) -> str:
    lowered = message.lower()
    if "cannot allocate memory" in lowered or "out of memory" in lowered or "memory allocation" in lowered:
        return "memory"
    return "invalid"
