"""``--plugins-config plugins.toml``: the operator's list of plugins and their settings.

Format (one table per plugin, keyed by its name; order of the tables is the tie-breaker of ``order``)::

    [plugins.guard]
    path = "plugins/guard.wasm"     # relative to this file's directory
    sha256 = "9f86d08..."           # optional pin: the module must hash to this
    order = 10                      # ascending; default 0
    enabled = true                  # default true
    policy = "closed"               # sync faults: "closed" (reject, 503; default) or "open" (continue)
    rewrite = false                 # may its reactions replace events? default true

    [plugins.guard.limits]          # any wasm_abi.Limits field
    sync_fuel = 5_000_000
    async_fuel = 50_000_000
    async_timeout = 0.5
    max_memory_bytes = 16_777_216
    max_output_bytes = 65_536

    [plugins.guard.config]          # the map passed to the plugin's init
    deny = ["internal.*"]

    [plugins.guard.capabilities]    # grants (ABI.md 7.1); none by default
    kv = true
    http = ["https://auth.example.com/", {prefix = "http://auth.internal:8080/", privateAddresses = true}]
    metrics = true
    sensitiveHeaders = ["Authorization"]

A bad file stops the gateway at start-up with ``FILE:LINE: KEY: what is wrong``. tomllib reports the
line of syntax errors itself; for a semantic error (wrong type, unknown key, missing module, sha256
mismatch) :func:`key_line` finds the line the key was written on.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .plugin_settings import PluginSettings, PluginSettingsError, check_name, parse_settings

__all__ = ["FilePlugin", "ModuleTooLarge", "PluginsConfigError", "key_line", "load_plugins_config", "read_module"]


class ModuleTooLarge(ValueError):
    """A module file is over its plugin's ``max_module_bytes``."""


def read_module(path: Path, max_bytes: int) -> bytes:
    """A module file's bytes, reading at most ``max_bytes + 1`` of them: the size ``stat()`` reports
    means nothing for a pipe or a device (``/dev/zero`` would be read until memory runs out), so the
    read itself is bounded. Raises :class:`ModuleTooLarge` (naming the file and the limit) or OSError."""
    with path.open("rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ModuleTooLarge(f"module {path} is over the module size limit of {max_bytes} bytes "
                             "(limits.max_module_bytes); refusing to read more of it")
    return data


class PluginsConfigError(ValueError):
    """A plugins.toml problem, located: ``str()`` is ``FILE:LINE: KEY: message``."""

    def __init__(self, file: Path, line: int | None, key: str, message: str) -> None:
        self.file = file
        self.line = line
        self.key = key
        self.message = message
        where = f"{file}:{line}" if line else str(file)
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")


@dataclass(frozen=True, slots=True)
class FilePlugin:
    """One ``[plugins.NAME]`` table, validated, with the module bytes already read and checked."""

    name: str
    path: Path
    settings: PluginSettings
    wasm: bytes
    sha256: str
    #: Position in the file: breaks ``order`` ties.
    index: int
    #: Line of the ``[plugins.NAME]`` header, for errors found later (module load failures).
    line: int | None


_HEADER = re.compile(r"^\s*\[\[?\s*(?P<path>[^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*(?P<key>(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)\s*=")


def _split_dotted(text: str) -> tuple[str, ...]:
    parts = re.findall(r"\"([^\"]*)\"|'([^']*)'|([A-Za-z0-9_-]+)", text)
    return tuple(double or single or bare for double, single, bare in parts)


def key_line(text: str, path: tuple[str | int, ...]) -> int | None:
    """The 1-based line where the key at ``path`` is defined, or the line of its nearest enclosing
    table/key when the exact key is not written (e.g. a missing required key, or a key inside an
    inline table). A best-effort scan, not a TOML parser: the file already parsed, so it is valid."""
    target = tuple(str(p) for p in path)
    best: tuple[int, int] | None = None  # (matched prefix length, line)
    table: tuple[str, ...] = ()
    multiline_string = False
    for number, line in enumerate(text.splitlines(), start=1):
        if multiline_string:
            if line.count('"""') % 2 == 1 or line.count("'''") % 2 == 1:
                multiline_string = False
            continue
        header = _HEADER.match(line)
        full: tuple[str, ...] | None = None
        if header and not _KEY.match(line):
            table = _split_dotted(header.group("path"))
            full = table
        else:
            key = _KEY.match(line)
            if key:
                full = table + _split_dotted(key.group("key"))
                rest = line[key.end():]
                if rest.count('"""') % 2 == 1 or rest.count("'''") % 2 == 1:
                    multiline_string = True
        if full is None:
            continue
        if full[:len(target)] == target:
            return number  # the key itself, or the first table/key nested under it
        common = 0
        for a, b in zip(full, target, strict=False):
            if a != b:
                break
            common += 1
        if common == len(full) and common < len(target) and (best is None or common > best[0]):
            best = (common, number)
    return best[1] if best else None


def _error(file: Path, text: str, path: tuple[str | int, ...], message: str) -> PluginsConfigError:
    return PluginsConfigError(file, key_line(text, path), ".".join(map(str, path)), message)


def load_plugins_config(file: str | Path) -> list[FilePlugin]:
    """Read, validate and resolve a plugins.toml; raise :class:`PluginsConfigError` on the first
    problem. Module bytes are read (and sha256-checked) here so a wrong pin fails start-up."""
    file = Path(file)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise PluginsConfigError(file, None, "", f"cannot read the plugins config: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise PluginsConfigError(file, None, "", f"not UTF-8 text: {exc}") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = _decode_error_line(str(exc))
        raise PluginsConfigError(file, line, "", f"invalid TOML: {exc}") from None

    for key in document:
        if key != "plugins":
            raise _error(file, text, (key,), "unknown top-level key; plugins are configured under [plugins.NAME]")
    tables = document.get("plugins", {})
    if not isinstance(tables, dict):
        raise _error(file, text, ("plugins",), "must be a table of [plugins.NAME] tables")

    plugins: list[FilePlugin] = []
    for index, (name, table) in enumerate(tables.items()):
        here: tuple[str, ...] = ("plugins", name)
        try:
            check_name(name)
        except PluginSettingsError as exc:
            raise _error(file, text, here, exc.problems[0][1]) from None
        if not isinstance(table, dict):
            raise _error(file, text, here, "must be a table with at least a 'path' key")
        body = dict(table)
        raw_path = body.pop("path", None)
        if raw_path is None:
            raise _error(file, text, here, "missing required key 'path' (the module file, .wasm or .wat)")
        if not isinstance(raw_path, str) or not raw_path:
            raise _error(file, text, (*here, "path"), f"must be a non-empty string, got {raw_path!r}")
        try:
            settings = parse_settings(body)
        except PluginSettingsError as exc:
            loc, message = exc.problems[0]
            raise _error(file, text, (*here, *loc), message) from None
        module_path = Path(raw_path)
        if not module_path.is_absolute():
            module_path = file.parent / module_path
        try:
            wasm = read_module(module_path, settings.to_limits().max_module_bytes)
        except OSError as exc:
            raise _error(file, text, (*here, "path"),
                         f"cannot read module {module_path}: {exc.strerror or exc}") from None
        except ModuleTooLarge as exc:
            raise _error(file, text, (*here, "path"), str(exc)) from None
        digest = hashlib.sha256(wasm).hexdigest()
        if settings.sha256 is not None and settings.sha256 != digest:
            raise _error(file, text, (*here, "sha256"),
                         f"module {module_path} has sha256 {digest}, not the pinned {settings.sha256}; "
                         "refusing to load it")
        plugins.append(FilePlugin(name=name, path=module_path, settings=settings, wasm=wasm, sha256=digest,
                                  index=index, line=key_line(text, here)))
    return plugins


def _decode_error_line(message: str) -> int | None:
    match = re.search(r"\(at line (\d+), column \d+\)", message)
    return int(match.group(1)) if match else None


def describe(plugin: FilePlugin) -> dict[str, Any]:
    """For logs: where a file plugin came from."""
    return {"name": plugin.name, "path": str(plugin.path), "sha256": plugin.sha256}
