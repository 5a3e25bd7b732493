"""The event gateway's sandboxed WebAssembly plugin host, ABI v1 (see ABI.md; the Python API is in
docs/python-host.md)."""

from .capabilities import CapabilityError, Grants, HttpGrant
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
from .kv import KvStore, MemoryKv
from .limits import Limits
from .module_info import ModuleInfo, inspect_module
from .plugin import Plugin
from .plugin_metrics import PluginMetrics
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
    "CapabilityError",
    "FaultKind",
    "Grants",
    "HttpGrant",
    "InputTooLarge",
    "KvStore",
    "Limits",
    "LoadErrorKind",
    "MemoryKv",
    "ModuleInfo",
    "NoIdleInstance",
    "Plugin",
    "PluginError",
    "PluginFault",
    "PluginLoadError",
    "PluginMetrics",
    "PluginState",
    "PluginSubscription",
    "Reaction",
    "Subscription",  # deprecated alias of PluginSubscription
    "inspect_module",
    "system_event",
]
