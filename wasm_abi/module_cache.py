"""Compiled-module cache: in memory for this process, and on disk across restarts.

Compiling a big module (a Go plugin) takes seconds, deserializing it milliseconds, so compiled
artifacts are kept on disk under a key made of the module's sha256, the wasmtime version and
the engine settings.  `Module.deserialize` runs native code from those bytes, so the host only
ever deserializes files it wrote itself: every entry carries an HMAC-SHA256 under a random key
that lives 0600 in the cache directory; any mismatch, truncation or error means "recompile".
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

import wasmtime

from .compile_worker import compile_in_child

log = logging.getLogger("wasm_abi.cache")

ENTRY_MAGIC = b"EGWASM-CACHE-1\n"
KEY_FILE = "cache.key"
KEY_BYTES = 32
MEMORY_ENTRIES = 64

_memory: OrderedDict[str, wasmtime.Module] = OrderedDict()
_memory_lock = threading.Lock()


def default_cache_dir() -> Path:
    """`$EVENT_GATEWAY_CACHE_DIR`, else `~/.cache/event-gateway/modules` (read at each call)."""
    configured = os.environ.get("EVENT_GATEWAY_CACHE_DIR")
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "event-gateway" / "modules"


def cache_key(module_sha256: str, settings: str) -> str:
    return hashlib.sha256(f"{module_sha256}\0{settings}".encode()).hexdigest()


def _load_or_create_key(directory: Path) -> bytes:
    """The HMAC key, created 0600 on first use; a key readable by others is not trusted.

    The key is written to a private temporary file and hard-linked into place, so a process
    racing us never reads a half-written key (`link` fails if the name exists).
    """
    path = directory / KEY_FILE
    for _ in range(3):
        try:
            st = path.stat()
        except FileNotFoundError:
            key = secrets.token_bytes(KEY_BYTES)
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".key-")  # mkstemp creates it 0600
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(key)
                os.link(tmp, path)
                return key
            except FileExistsError:
                continue  # another process won the race: use its key
            finally:
                os.unlink(tmp)
        data = path.read_bytes()
        if st.st_mode & 0o077 or st.st_uid != os.getuid() or len(data) != KEY_BYTES:
            log.warning("module cache key %s is not a private %d-byte file; replacing it", path, KEY_BYTES)
            path.unlink(missing_ok=True)
            continue
        return data
    raise OSError(f"could not create a module cache key in {directory}")


def _mac(key: bytes, entry_key: str, payload: bytes) -> bytes:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    mac.update(entry_key.encode())
    mac.update(b"\0")
    mac.update(payload)
    return mac.digest()


def _read_entry(directory: Path, entry_key: str, engine: wasmtime.Engine) -> wasmtime.Module | None:
    path = directory / f"{entry_key}.cwasm"
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("cannot read module cache entry %s (%s); compiling", path, exc)
        return None
    try:
        key = _load_or_create_key(directory)
        header = len(ENTRY_MAGIC)
        if not blob.startswith(ENTRY_MAGIC) or len(blob) < header + 32:
            raise ValueError("bad header")
        tag, payload = blob[header : header + 32], blob[header + 32 :]
        if not hmac.compare_digest(tag, _mac(key, entry_key, payload)):
            raise ValueError("authentication failed")
        return wasmtime.Module.deserialize(engine, payload)
    except Exception as exc:  # noqa: BLE001 - any doubt about an entry means recompile
        log.warning("ignoring module cache entry %s (%s); recompiling", path, exc)
        return None


def _write_entry(directory: Path, entry_key: str, payload: bytes) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = _load_or_create_key(directory)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".cwasm")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(ENTRY_MAGIC + _mac(key, entry_key, payload) + payload)
            os.replace(tmp, directory / f"{entry_key}.cwasm")
        except BaseException:
            os.unlink(tmp)
            raise
    except Exception as exc:  # noqa: BLE001 - a cache that cannot be written only costs a compile
        log.warning("could not write module cache entry in %s: %s", directory, exc)


def compile_module(
    engine: wasmtime.Engine,
    settings: str,
    wasm: bytes,
    module_sha256: str,
    cache_dir: Path | None = None,
    *,
    max_stack_bytes: int,
    timeout: float,
    memory_bytes: int,
) -> wasmtime.Module:
    """Compile `wasm` (binary) for `engine`, reusing a cached compilation when there is one.

    Only a verified cache hit (this process's memory cache, or a disk entry whose HMAC checks)
    skips compiling; every other module is shape-checked and compiled by a child process under
    `memory_bytes` of address space and `timeout` seconds (`compile_worker`), never in this
    process.  `engine` must be `engine_for(max_stack_bytes)`'s.  Raises `ShapeRefused`,
    `CompileFailed` (invalid module or broken compiler), `CompileTimeout` or
    `CompileMemoryExceeded`.
    """
    entry_key = cache_key(module_sha256, settings)
    with _memory_lock:
        module = _memory.get(entry_key)
        if module is not None:
            _memory.move_to_end(entry_key)
            return module
    directory = cache_dir if cache_dir is not None else default_cache_dir()
    module = _read_entry(directory, entry_key, engine)
    if module is None:
        payload = compile_in_child(wasm, max_stack_bytes, timeout, memory_bytes)
        # Safe: these bytes come from our own compile child (see compile_worker's docstring).
        module = wasmtime.Module.deserialize(engine, payload)
        _write_entry(directory, entry_key, payload)
    with _memory_lock:
        _memory[entry_key] = module
        while len(_memory) > MEMORY_ENTRIES:
            _memory.popitem(last=False)
    return module


def clear_memory_cache() -> None:
    """Forget the in-process cache (tests use it to prove the on-disk cache works)."""
    with _memory_lock:
        _memory.clear()
