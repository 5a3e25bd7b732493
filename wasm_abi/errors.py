"""The error classes a caller of the host has to tell apart, and their closed sets of kinds.

`PluginLoadError` means "this module will never run here" (fix the module or its config);
`PluginFault` means "this call failed because the plugin misbehaved" (the host discarded the
instance and stays healthy).  Both derive from `PluginError` so a caller that does not care
can catch one class.
"""

from __future__ import annotations

from typing import Literal, get_args


#: Longest message a plugin error keeps, in characters. Messages carry plugin-supplied text
#: (trap messages with the module's function names, backtraces, export names, reaction fields)
#: and are stored (`lastFault`), logged and returned by APIs: a longer one is cut, marked
#: "... (N more characters)".
MAX_MESSAGE_CHARS = 4096


def cap_text(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`text` cut to `limit` characters, with a marker saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


#: Why a call failed because of the plugin (`PluginFault.kind`): a closed set, each listed in ABI.md
#: section 8 (tests/wasm_abi/test_kinds.py checks the table against this).
FaultKind = Literal[
    "out_of_fuel",  # the fuel budget ran out
    "timeout",  # the wall-clock deadline passed
    "memory",  # alloc returned 0, or the call failed with memory grown to the limit
    "trap",  # any other trap (unreachable, out of bounds, stack overflow, proc_exit, ...)
    "bad_output",  # a packed buffer out of bounds or too large, bad msgpack, a value of the wrong type
    "init_failed",  # a fresh instance could not be made
    "quarantined",  # the plugin is quarantined: nothing ran
    "closed",  # the plugin was closed: nothing ran
    "input_too_large",  # the encoded event is over Limits.max_input_bytes: nothing ran
]

#: Why a module cannot be loaded (`PluginLoadError.kind`): a closed set, each listed in ABI.md section 8.
#: A fault in a load step keeps its fault kind. "bad_settings", "budget" and "load_failed" are the
#: gateway's: its plugin settings do not fit the module (e.g. pool_size 1 with sync and async
#: subscriptions), the plugin would go over the budget of all plugins together (--plugins-max-*), and a
#: load that failed with an error that is not a PluginLoadError.
LoadErrorKind = Literal[
    "unreadable",
    "too_large",
    "invalid_module",
    "compile_limit",
    "module_shape",
    "unsupported_feature",
    "compile_failed",
    "abi_version",
    "missing_export",
    "bad_export",
    "forbidden_import",
    "not_granted",
    "bad_config",
    "instantiate",
    "init_rejected",
    "bad_subscriptions",
    "bad_settings",
    "budget",
    "load_failed",
    "out_of_fuel",
    "timeout",
    "trap",
    "memory",
    "bad_output",
]

FAULT_KINDS: frozenset[str] = frozenset(get_args(FaultKind))
LOAD_ERROR_KINDS: frozenset[str] = frozenset(get_args(LoadErrorKind))
_LOAD_STEP_KINDS: dict[str, LoadErrorKind] = {"out_of_fuel": "out_of_fuel", "timeout": "timeout", "trap": "trap",
                                              "memory": "memory", "bad_output": "bad_output"}


def load_error_kind(kind: FaultKind) -> LoadErrorKind:
    """The load error kind of a fault that happened in a load step (the same name; only the five
    kinds a call can fault with occur there)."""
    return _LOAD_STEP_KINDS.get(kind, "load_failed")


class PluginError(Exception):
    """Base class of every error the plugin host raises on a plugin's behalf."""

    kind: str | None

    def __init__(self, plugin: str, message: str, kind: str | None = None) -> None:
        self.plugin = plugin
        self.message = message = cap_text(message)
        self.kind = kind
        super().__init__(f"plugin {plugin!r}: {message}")


class PluginLoadError(PluginError):
    """The module cannot be loaded: invalid bytes, wrong ABI, missing exports, forbidden
    imports, a failing `_initialize`/`init`, or a module over the size limit.

    `kind` (a `LoadErrorKind`) says which: e.g. "invalid_module", "abi_version", "compile_limit"
    (compiling needed more than `Limits.compile_memory_bytes` or `Limits.compile_timeout`),
    "module_shape" (a shape refused before compiling), "unsupported_feature" (the module uses a
    Wasm proposal the host turns off), or a fault kind ("out_of_fuel", "timeout", "trap",
    "memory", "bad_output") when the fault happened while loading. ABI.md section 8 lists them all.
    """

    kind: LoadErrorKind

    def __init__(self, plugin: str, message: str, kind: LoadErrorKind) -> None:
        super().__init__(plugin, message, kind)


class PluginFault(PluginError):
    """The plugin misbehaved during a call (or the call could not run: "quarantined", "closed",
    "input_too_large").

    `kind` is a `FaultKind`, a short machine-readable string; ABI.md section 8 lists them all.
    """

    kind: FaultKind

    def __init__(self, plugin: str, kind: FaultKind, message: str) -> None:
        super().__init__(plugin, message, kind)


class InputTooLarge(PluginFault, ValueError):
    """The encoded event is over the plugin's `Limits.max_input_bytes`: nothing ran and no fault is
    counted against the plugin's health. A `PluginFault` of kind "input_too_large" and, for callers
    written before it existed, a `ValueError`."""

    def __init__(self, plugin: str, size: int, limit: int) -> None:
        super().__init__(plugin, "input_too_large",
                         f"event of {size} bytes is over the input limit of {limit} bytes for plugin {plugin!r}")
        self.size = size
        self.limit = limit


class NoIdleInstance(Exception):
    """`Plugin.react_encoded(..., idle_only=True)` found no idle instance: nothing ran, nothing was
    counted. The caller (an event loop that must not wait for an instance or make one) retries the
    call where waiting is allowed, e.g. on a thread."""

    def __init__(self, plugin: str) -> None:
        self.plugin = plugin
        super().__init__(f"plugin {plugin!r} has no idle instance")
