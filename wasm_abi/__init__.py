"""The event gateway's sandboxed WebAssembly plugin host, ABI v1 (see ABI.md; the Python API is in
docs/python-host.md)."""

from .errors import (
    FAULT_KINDS,
    LOAD_ERROR_KINDS,
    FaultKind,
    InputTooLarge,
    LoadErrorKind,
    NoIdleInstance,
    PluginError,
    PluginFault,
    PluginLoadError,
)
from .events import (
    EVENT_RECEIVED,
    FUNCTION_INVOCATION_FAILED,
    FUNCTION_INVOKED,
    FUNCTION_INVOKING,
    SYSTEM_EVENT_TYPES,
    system_event,
)
from .health import PluginState
from .limits import Limits
from .module_info import ModuleInfo, inspect_module
from .plugin import Plugin
from .reaction import Reaction
from .subscriptions import PluginSubscription, Subscription

__all__ = [
    "EVENT_RECEIVED",
    "FAULT_KINDS",
    "FUNCTION_INVOCATION_FAILED",
    "FUNCTION_INVOKED",
    "FUNCTION_INVOKING",
    "LOAD_ERROR_KINDS",
    "SYSTEM_EVENT_TYPES",
    "FaultKind",
    "InputTooLarge",
    "Limits",
    "LoadErrorKind",
    "ModuleInfo",
    "NoIdleInstance",
    "Plugin",
    "PluginError",
    "PluginFault",
    "PluginLoadError",
    "PluginState",
    "PluginSubscription",
    "Reaction",
    "Subscription",  # deprecated alias of PluginSubscription
    "inspect_module",
    "system_event",
]
