"""Deprecated: the plugin settings moved to :mod:`gateway.plugins.plugin_settings` (``SettingsError`` is
``PluginSettingsError`` there). Kept for ``gateway.plugin_cli`` until it imports the new names."""

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
