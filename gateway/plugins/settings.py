"""Deprecated: the plugin settings moved to :mod:`gateway.plugins.plugin_settings` (``SettingsError`` is
``PluginSettingsError`` there). Nothing in gateway/ imports this module; it is kept only while tests
still do (tests/wasm_abi/test_wall_time.py), and goes once they import ``plugin_settings``."""

from .plugin_settings import (  # noqa: F401
    GRANTABLE_HEADERS,
    LIMIT_KEYS,
    NAME_PATTERN,
    PluginCapabilities,
    PluginSettings,
    PluginSettingsError,
    PluginSource,
    check_name,
    parse_settings,
)

SettingsError = PluginSettingsError
