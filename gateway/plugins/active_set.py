"""Deprecated: split into :mod:`gateway.plugins.stages` (the set and its reaction rules),
:mod:`gateway.plugins.reactor` (the async pool) and :mod:`gateway.plugins.loading` (``PluginSpec``,
``LoadedPlugin``). Nothing in gateway/ imports this module; it is kept only while tests still do
(tests/wasm_abi/test_wall_time.py), and goes once they import the new modules."""

from .loading import STATE_VALUES, LoadedPlugin, PluginSpec, load_plugin, spec_from_path  # noqa: F401
from .reactor import ASYNC_BACKLOG, ASYNC_BACKLOG_BYTES, ASYNC_SHARE, ASYNC_THREADS, AsyncReactor, QueuedPayload  # noqa: F401
from .stages import EMPTY_SET, MAX_REPLACEMENT_BYTES, ActivePluginSet, ReplacementBudget, replacement_budget  # noqa: F401
