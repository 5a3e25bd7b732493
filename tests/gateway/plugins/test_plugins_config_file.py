"""plugins.toml: a valid file gives the plugins in order with their settings; every invalid file is
refused with the file, the line and the key at fault."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from tests.wat import example, write

from gateway.metrics import Metrics
from gateway.plugins.config_file import PluginsConfigError, load_plugins_config
from gateway.plugins.manager import PluginManager, PluginStartupError


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    write(tmp_path, "guard", example("guard"))
    write(tmp_path, "logger", example("logger"))
    return tmp_path


def _config(directory: Path, text: str) -> Path:
    path = directory / "plugins.toml"
    path.write_text(text)
    return path


def _refused(path: Path) -> PluginsConfigError:
    with pytest.raises(PluginsConfigError) as caught:
        load_plugins_config(path)
    return caught.value


def test_valid_file_gives_plugins_with_settings(plugin_dir: Path) -> None:
    guard_sha = hashlib.sha256(example("guard")).hexdigest()
    path = _config(plugin_dir, f"""
[plugins.guard]
path = "guard.wasm"
sha256 = "{guard_sha}"
order = 10
policy = "open"
rewrite = false

[plugins.guard.limits]
sync_fuel = 5_000_000
async_timeout = 0.5
max_memory_bytes = 16_777_216
max_output_bytes = 65_536

[plugins.guard.config]
denyTypes = ["internal.secret"]

[plugins.logger]
path = "{plugin_dir / 'logger.wasm'}"
enabled = false
""")
    guard, logger = load_plugins_config(path)
    assert guard.name == "guard" and guard.index == 0 and guard.sha256 == guard_sha
    assert guard.settings.order == 10 and guard.settings.policy == "open" and guard.settings.rewrite is False
    limits = guard.settings.to_limits()
    assert (limits.sync_fuel, limits.async_timeout, limits.max_memory_bytes, limits.max_output_bytes) == (
        5_000_000, 0.5, 16_777_216, 65_536)
    assert guard.settings.config == {"denyTypes": ["internal.secret"]}
    assert guard.wasm == example("guard")
    assert logger.name == "logger" and logger.settings.enabled is False and logger.index == 1
    assert logger.settings.policy == "closed" and logger.settings.rewrite is True


@pytest.mark.parametrize(
    ("text", "line", "key", "says"),
    [
        ('[plugins.guard]\npath = "guard.wasm"\norder = \n', 3, "", "invalid TOML"),
        ('[plugins.guard]\npath = "guard.wasm"\n\npolicy = "sometimes"\n', 4, "plugins.guard.policy", "'closed' or 'open'"),
        ('[plugins.guard]\npath = "guard.wasm"\norder = "first"\n', 3, "plugins.guard.order", "valid integer"),
        ('[plugins.guard]\npath = "guard.wasm"\nretries = 3\n', 3, "plugins.guard.retries", "unknown key"),
        ('[plugins.guard]\npath = "guard.wasm"\n[plugins.guard.limits]\nsync_fuel = 10\nasync_fuel = -5\n', 5,
         "plugins.guard.limits.async_fuel", "must be positive"),
        ('[plugins.guard]\npath = "guard.wasm"\nlimits = { sync_fuel = 1, fuel = 2 }\n', 3,
         "plugins.guard.limits.fuel", "unknown limit"),
        ('# plugins\n\n[plugins.guard]\norder = 1\n', 3, "plugins.guard", "missing required key 'path'"),
        ('[plugins.guard]\npath = "missing.wasm"\n', 2, "plugins.guard.path", "cannot read module"),
        ('[plugins.guard]\npath = "guard.wasm"\nsha256 = "' + "0" * 64 + '"\n', 3, "plugins.guard.sha256",
         "refusing to load it"),
        ('[plugins."bad name!"]\npath = "guard.wasm"\n', 1, 'plugins.bad name!', "plugin name must match"),
        ('[plugin.guard]\npath = "guard.wasm"\n', 1, "plugin", "unknown top-level key"),
    ],
    ids=["syntax", "policy", "order-type", "unknown-key", "limit-negative", "inline-limit", "no-path",
         "missing-module", "sha256-mismatch", "bad-name", "wrong-table"],
)
def test_invalid_file_names_file_line_and_key(plugin_dir: Path, text: str, line: int, key: str, says: str) -> None:
    path = _config(plugin_dir, text)
    error = _refused(path)
    assert error.file == path
    assert error.line == line, str(error)
    assert error.key == key, str(error)
    assert says in str(error)
    assert str(error).startswith(f"{path}:{line}: ")


async def test_gateway_refuses_to_start_on_an_unloadable_plugin(plugin_dir: Path) -> None:
    """A module that is readable but not a plugin fails start-up, naming the file and the plugin."""
    (plugin_dir / "notaplugin.wat").write_text("(module (memory (export \"memory\") 1))")
    path = _config(plugin_dir, '[plugins.broken]\npath = "notaplugin.wat"\n')
    manager = PluginManager(metrics=Metrics(), plugins_config=path)
    with pytest.raises(PluginStartupError) as caught:
        await manager.start()
    message = str(caught.value)
    assert message.startswith(f"{path}:2: plugins.broken.path: cannot load module "), message
    assert "eventgateway_abi_v1" in message


async def test_init_refusing_the_config_names_the_config_line(plugin_dir: Path) -> None:
    """The guard's init refuses a denyTypes that is not a list: the error points at the config table."""
    path = _config(plugin_dir, '# guard\n[plugins.guard]\npath = "guard.wasm"\n\n'
                               '[plugins.guard.config]\ndenyTypes = 7\n')
    with pytest.raises(PluginStartupError) as caught:
        await PluginManager(metrics=Metrics(), plugins_config=path).start()
    message = str(caught.value)
    assert message.startswith(f"{path}:5: plugins.guard.config: cannot load module "), message
    assert "(init_rejected)" in message and "init rejected the configuration" in message


async def test_gateway_refuses_duplicate_names_across_flag_and_file(plugin_dir: Path) -> None:
    path = _config(plugin_dir, '[plugins.guard]\npath = "guard.wasm"\n')
    with pytest.raises(PluginStartupError, match="two plugins are named 'guard'") as caught:
        await PluginManager(metrics=Metrics(), plugin_paths=[str(plugin_dir / "guard.wasm")], plugins_config=path).start()
    assert str(caught.value).startswith(f"{path}:1: plugins.guard: two plugins")
