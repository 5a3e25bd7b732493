"""The three error classes a caller of the host has to tell apart.

`PluginLoadError` means "this module will never run here" (fix the module or its config);
`PluginFault` means "this call failed because the plugin misbehaved" (the host discarded the
instance and stays healthy).  Both derive from `PluginError` so a caller that does not care
can catch one class.
"""

from __future__ import annotations


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


class PluginError(Exception):
    """Base class of every error the plugin host raises on a plugin's behalf."""

    def __init__(self, plugin: str, message: str, kind: str | None = None) -> None:
        self.plugin = plugin
        self.message = message = cap_text(message)
        self.kind = kind
        super().__init__(f"plugin {plugin!r}: {message}")


class PluginLoadError(PluginError):
    """The module cannot be loaded: invalid bytes, wrong ABI, missing exports, forbidden
    imports, a failing `_initialize`/`init`, or a module over the size limit.

    `kind` says which, e.g. "invalid_module", "abi_version", "missing_export", "bad_export",
    "forbidden_import", "too_large", "init_failed", "init_rejected", "bad_subscriptions",
    "compile_limit" (compiling needed more than `Limits.compile_memory_bytes` or
    `Limits.compile_timeout`), "module_shape" (a shape refused before compiling),
    "unsupported_feature" (the module uses a Wasm proposal the host turns off), "compile_failed",
    or a fault kind ("out_of_fuel", "timeout", "trap", "memory", "bad_output") when the fault
    happened while loading.
    """


class PluginFault(PluginError):
    """The plugin misbehaved during a call.

    `kind` is a short machine-readable string: "out_of_fuel", "timeout", "trap", "memory",
    "bad_output", "quarantined" or "init_failed" (a fresh instance could not be made).
    """

    kind: str

    def __init__(self, plugin: str, kind: str, message: str) -> None:
        super().__init__(plugin, message, kind)


class NoIdleInstance(Exception):
    """`Plugin.react_encoded(..., idle_only=True)` found no idle instance: nothing ran, nothing was
    counted. The caller (an event loop that must not wait for an instance or make one) retries the
    call where waiting is allowed, e.g. on a thread."""

    def __init__(self, plugin: str) -> None:
        self.plugin = plugin
        super().__init__(f"plugin {plugin!r} has no idle instance")
