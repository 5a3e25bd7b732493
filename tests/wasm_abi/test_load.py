"""Loading: version marker, exports, imports, size, bytes/WAT/file sources, init and config."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest
import wasmtime

from wasm_abi import (
    EVENT_RECEIVED,
    FUNCTION_INVOKED,
    Limits,
    Plugin,
    PluginError,
    PluginFault,
    PluginLoadError,
    Reaction,
    inspect_module,
)
from wasm_abi.imports import MAX_IMPORTS

from tests.wat import packed, plugin_wat, wat_bytes


def wasm(**kw: object) -> bytes:
    return bytes(wasmtime.wat2wasm(plugin_wat(**kw)))


def test_error_classes_share_a_base() -> None:
    assert issubclass(PluginLoadError, PluginError)
    assert issubclass(PluginFault, PluginError)


def test_loads_a_valid_plugin_and_reads_subscriptions() -> None:
    data = wasm(subscriptions=[(EVENT_RECEIVED, "sync"), (FUNCTION_INVOKED, "async")])
    plugin = Plugin.from_bytes(data, name="good")
    assert plugin.name == "good"
    import hashlib

    assert plugin.sha256 == hashlib.sha256(data).hexdigest()
    assert plugin.subscriptions == [(EVENT_RECEIVED, "sync"), (FUNCTION_INVOKED, "async")]
    assert plugin.state.active


def test_from_file_accepts_wasm_and_wat(tmp_path: Path) -> None:
    text = plugin_wat()
    (tmp_path / "text.wat").write_text(text)
    (tmp_path / "binary.wasm").write_bytes(bytes(wasmtime.wat2wasm(text)))
    from_text = Plugin.from_file(tmp_path / "text.wat")
    from_binary = Plugin.from_file(tmp_path / "binary.wasm")
    assert from_text.name == "text" and from_binary.name == "binary"
    assert from_text.subscriptions == from_binary.subscriptions == [(EVENT_RECEIVED, "sync")]


def test_from_file_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(PluginLoadError, match="nope.wasm"):
        Plugin.from_file(tmp_path / "nope.wasm")


def test_garbage_bytes_are_refused() -> None:
    with pytest.raises(PluginLoadError, match="not a WebAssembly binary and not valid WAT") as info:
        Plugin.from_bytes(b"hello, not wasm", name="junk")
    assert info.value.plugin == "junk"
    with pytest.raises(PluginLoadError, match="neither a WebAssembly binary"):
        Plugin.from_bytes(b"\xff\xfe\x00\x01", name="junk")


def test_truncated_binary_is_refused() -> None:
    data = wasm()
    with pytest.raises(PluginLoadError, match="not a valid WebAssembly module"):
        Plugin.from_bytes(data[: len(data) // 2], name="cut")


def test_module_over_size_limit_is_refused() -> None:
    data = wasm()
    with pytest.raises(PluginLoadError, match="over the module size limit") as info:
        Plugin.from_bytes(data, name="big", limits=Limits(max_module_bytes=len(data) - 1))
    assert info.value.kind == "too_large"


def test_missing_version_marker_is_refused() -> None:
    with pytest.raises(PluginLoadError, match="eventgateway_abi_v1") as info:
        Plugin.from_bytes(wasm(marker=None), name="nomarker")
    assert info.value.kind == "abi_version"
    assert "does not declare a known ABI version" in str(info.value)


def test_unknown_version_marker_is_refused_naming_it() -> None:
    with pytest.raises(PluginLoadError, match="eventgateway_abi_v2.*supports only eventgateway_abi_v1"):
        Plugin.from_bytes(wasm(marker="eventgateway_abi_v2"), name="future")


@pytest.mark.parametrize("export", ["memory", "alloc", "subscriptions", "react"])
def test_missing_required_export_is_refused_naming_it(export: str) -> None:
    with pytest.raises(PluginLoadError, match=f"missing required export.*{export}") as info:
        Plugin.from_bytes(wasm(omit=(export,)), name="partial")
    assert info.value.kind == "missing_export"


def test_export_with_wrong_signature_is_refused() -> None:
    text = plugin_wat(omit=("react",), extra='(func (export "react") (param i32) (result i32) (i32.const 0))')
    with pytest.raises(PluginLoadError, match=r"'react' has type \(i32\) -> \(i32\).*\(i32, i32\) -> \(i64\)"):
        Plugin.from_bytes(text.encode(), name="badsig")


@pytest.mark.parametrize(
    "imports, named",
    [
        ('(import "env" "abort" (func (param i32)))', "env.abort"),
        ('(import "eventgateway" "exec" (func))', "eventgateway.exec"),
        ('(import "env" "tbl" (table 1 funcref))', "env.tbl"),  # (a second memory: test_proposals.py)
    ],
)
def test_forbidden_import_is_refused_naming_it(imports: str, named: str) -> None:
    with pytest.raises(PluginLoadError, match=f"imports {named}") as info:
        Plugin.from_bytes(wasm(imports=imports), name="importer")
    assert info.value.kind == "forbidden_import"


def test_log_import_with_wrong_type_is_refused() -> None:
    with pytest.raises(PluginLoadError, match="eventgateway.log has type"):
        Plugin.from_bytes(wasm(imports='(import "eventgateway" "log" (func (param i32)))'), name="badlog")


def test_bad_subscriptions_are_refused() -> None:
    bad_type = msgpack.packb([{"eventType": "eventgateway.nope", "type": "sync"}])
    with pytest.raises(PluginLoadError, match=r"subscriptions\[0\].eventType is 'eventgateway.nope'"):
        Plugin.from_bytes(wasm(subscriptions=bad_type), name="subs")
    bad_mode = msgpack.packb([{"eventType": EVENT_RECEIVED, "type": "later"}])
    with pytest.raises(PluginLoadError, match=r"subscriptions\[0\].type is 'later'"):
        Plugin.from_bytes(wasm(subscriptions=bad_mode), name="subs")
    with pytest.raises(PluginLoadError, match="not valid msgpack"):
        Plugin.from_bytes(wasm(subscriptions=b"\xc1"), name="subs")
    with pytest.raises(PluginLoadError, match="must be a msgpack array"):
        Plugin.from_bytes(wasm(subscriptions=msgpack.packb({"a": 1})), name="subs")


def test_init_receives_config_and_may_reject_it() -> None:
    """init gets the config map; this plugin rejects the load unless the config is {"ok": true}."""
    good = msgpack.packb({"ok": True})
    rejection = msgpack.packb({"error": "config must be {ok: true}"})
    init = f"""
      (if (result i64) (i32.and (i32.eq (local.get $len) (i32.const {len(good)}))
                        (i32.eq (i32.load8_u (i32.add (local.get $ptr) (i32.const 4))) (i32.const 0xc3)))
        (then (i64.const 0))
        (else {packed(3072, rejection)}))"""
    data = wasm(init=init, extra=f"(data (i32.const 3072) {wat_bytes(rejection)})")
    assert Plugin.from_bytes(data, name="cfg", config={"ok": True}).subscriptions
    with pytest.raises(PluginLoadError, match="init rejected the configuration: config must be") as info:
        Plugin.from_bytes(data, name="cfg", config={"ok": False})
    assert info.value.kind == "init_rejected"
    with pytest.raises(PluginLoadError, match="init rejected"):
        Plugin.from_bytes(data, name="cfg")  # no config: init gets an empty map


def test_initialize_runs_before_init() -> None:
    """_initialize sets a global that init checks; init traps if it was not set first."""
    data = wasm(
        extra="(global $ready (mut i32) (i32.const 0))",
        initialize="(global.set $ready (i32.const 1))",
        init="(if (i32.eqz (global.get $ready)) (then unreachable)) (i64.const 0)",
    )
    assert Plugin.from_bytes(data, name="order").subscriptions


def test_inspect_module_describes_exports_imports_and_memory() -> None:
    text = plugin_wat(imports='(import "eventgateway" "log" (func (param i32 i32 i32)))')
    info = inspect_module(text.encode())
    names = dict(info.exports)
    assert names["react"] == "func (i32, i32) -> (i64)"
    assert info.abi_versions == ("eventgateway_abi_v1",)
    assert info.imports == (("eventgateway", "log", "func (i32, i32, i32) -> ()"),)
    assert info.memory_min_pages == 1 and info.size == len(text.encode())


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="Limits.sync_fuel must be positive"):
        Limits(sync_fuel=0)
    with pytest.raises(TypeError, match="Limits.pool_size must be a number"):
        Limits(pool_size="4")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Limits.sync_fuel must be an integer, got 10000000.0"):
        Limits(sync_fuel=1e7)  # type: ignore[arg-type]
    assert Limits(sync_timeout=1).sync_timeout == 1  # an int where a float is expected is fine
    assert Limits(5_000).sync_fuel == 5_000  # the first field, positionally
    with pytest.raises(ValueError, match="Limits.max_memory_bytes is 8589934592, over its ceiling of 4294967296"):
        Limits(max_memory_bytes=8 * 1024**3)
    with pytest.raises(ValueError, match="Limits.pool_size is 100000, over its ceiling of 64"):
        Limits(pool_size=100_000)
    with pytest.raises(ValueError, match="Limits.sync_timeout is 1000000000.0, over its ceiling of 5.0"):
        Limits(sync_timeout=1e9)
    with pytest.raises(Exception, match="cannot assign"):
        Limits().sync_fuel = 1  # type: ignore[misc]


def test_every_limit_has_a_ceiling_that_is_itself_accepted() -> None:
    from dataclasses import fields

    from wasm_abi.limits import CEILINGS

    names = [f.name for f in fields(Limits)]
    assert sorted(CEILINGS) == sorted(names)
    for name in names:
        assert getattr(Limits(**{name: CEILINGS[name]}), name) == CEILINGS[name]
        assert getattr(Limits(), name) <= CEILINGS[name], f"the default of {name} is over its ceiling"


def test_from_bytes_accepts_wat_as_str() -> None:
    assert Plugin.from_bytes(plugin_wat(), name="text").subscriptions == [(EVENT_RECEIVED, "sync")]


def test_trap_in_start_function_is_a_load_error() -> None:
    with pytest.raises(PluginLoadError, match="instantiation") as info:
        Plugin.from_bytes(wasm(extra="(func $boom unreachable) (start $boom)"), name="start")
    assert info.value.kind == "trap"


def test_inspect_module_from_path(tmp_path: Path) -> None:
    path = tmp_path / "m.wat"
    path.write_text(plugin_wat())
    info = inspect_module(path)
    assert info.size == path.stat().st_size and info.wasm_size > 8
    assert ("alloc", "func (i32) -> (i32)") in info.exports
    with pytest.raises(PluginLoadError, match="not valid WAT"):
        inspect_module(b"(module")


def test_bad_output_at_load_is_a_load_error() -> None:
    outside = (70_000 << 32) | 10
    subs_oob = plugin_wat(omit=("subscriptions",),
                          extra=f'(func (export "subscriptions") (result i64) (i64.const {outside}))')
    with pytest.raises(PluginLoadError, match="subscriptions.*outside its memory") as info:
        Plugin.from_bytes(subs_oob, name="subs-oob")
    assert info.value.kind == "bad_output"
    junk = b"\xc1"
    with pytest.raises(PluginLoadError, match="init reaction is not valid msgpack") as info:
        Plugin.from_bytes(wasm(init=packed(3072, junk), extra=f"(data (i32.const 3072) {wat_bytes(junk)})"),
                          name="init-junk")
    assert info.value.kind == "bad_output"


def test_subscriptions_over_the_output_limit_are_a_load_error() -> None:
    """A 1 MiB + 1 byte subscriptions buffer (in bounds of its memory) is refused before reading."""
    huge = (1024 << 32) | (1024 * 1024 + 1)
    text = plugin_wat(omit=("subscriptions",), memory='(memory (export "memory") 20)',
                      extra=f'(func (export "subscriptions") (result i64) (i64.const {huge}))')
    with pytest.raises(PluginLoadError, match="subscriptions returned a 1048577-byte buffer, over the output limit"
                       ) as info:
        Plugin.from_bytes(text, name="subs-huge")
    assert info.value.kind == "bad_output"


@pytest.mark.parametrize(
    "subs, message",
    [
        ([["eventgateway.event.received", "sync"]], r"subscriptions\[0\] must be a map, got list"),
        ([{"type": "sync"}], r"subscriptions\[0\].eventType is None"),
        ([{"eventType": EVENT_RECEIVED}], r"subscriptions\[0\].type is None"),
        ([{"eventType": EVENT_RECEIVED, "type": "sync"}, {"eventType": "user.created", "type": "sync"}],
         r"subscriptions\[1\].eventType is 'user.created'; expected one of eventgateway.event.received"),
        ([{"eventType": EVENT_RECEIVED, "type": "SYNC"}], r"subscriptions\[0\].type is 'SYNC'"),
    ],
)
def test_each_bad_subscription_entry_is_named(subs: object, message: str) -> None:
    with pytest.raises(PluginLoadError, match=message) as info:
        Plugin.from_bytes(wasm(subscriptions=msgpack.packb(subs)), name="subs")
    assert info.value.kind == "bad_subscriptions"


def test_no_subscriptions_and_duplicates() -> None:
    assert Plugin.from_bytes(wasm(subscriptions=msgpack.packb([])), name="none").subscriptions == []
    assert Plugin.from_bytes(wasm(subscriptions=msgpack.packb(None)), name="nil").subscriptions == []
    zero = plugin_wat(omit=("subscriptions",), extra='(func (export "subscriptions") (result i64) (i64.const 0))')
    assert Plugin.from_bytes(zero, name="zero").subscriptions == []
    many = [{"eventType": EVENT_RECEIVED, "type": "sync"}] * 5000 + [{"eventType": FUNCTION_INVOKED, "type": "async"}]
    plugin = Plugin.from_bytes(wasm(subscriptions=msgpack.packb(many), memory='(memory (export "memory") 8)'),
                               name="dups")
    assert plugin.subscriptions == [(EVENT_RECEIVED, "sync"), (FUNCTION_INVOKED, "async")]
    assert plugin.subscriptions[0].event_type == EVENT_RECEIVED and plugin.subscriptions[0].mode == "sync"


def test_init_reaction_without_error_loads() -> None:
    """init may answer {} or keys other than error (ignored): only `error` fails the load."""
    body = msgpack.packb({"event": {"type": "a.b"}, "later": 1})
    data = wasm(init=packed(3072, body), extra=f"(data (i32.const 3072) {wat_bytes(body)})")
    assert Plugin.from_bytes(data, name="init-ok").subscriptions == [(EVENT_RECEIVED, "sync")]


def test_init_error_with_status_fails_the_load_with_its_message() -> None:
    body = msgpack.packb({"error": "missing api key", "status": 500})
    data = wasm(init=packed(3072, body), extra=f"(data (i32.const 3072) {wat_bytes(body)})")
    with pytest.raises(PluginLoadError, match="init rejected the configuration: missing api key") as info:
        Plugin.from_bytes(data, name="init-no")
    assert info.value.kind == "init_rejected"


def test_start_function_runs_under_the_load_deadline() -> None:
    with pytest.raises(PluginLoadError, match=r"instantiation \(data segments, start function\) hit its wall-clock deadline") as info:
        Plugin.from_bytes(wasm(extra="(func $spin (loop (br 0))) (start $spin)"), name="spin",
                          limits=Limits(load_fuel=10**12, load_timeout=0.05))
    assert info.value.kind == "timeout"


def test_config_must_be_a_dict_and_encodable() -> None:
    with pytest.raises(TypeError, match="plugin config must be a dict, got list"):
        Plugin.from_bytes(wasm(), name="cfg", config=[1])  # type: ignore[arg-type]
    with pytest.raises(PluginLoadError, match="config cannot be encoded as msgpack") as info:
        Plugin.from_bytes(wasm(), name="cfg", config={"x": object()})
    assert info.value.kind == "bad_config"


def test_from_file_positional_arguments(tmp_path: Path) -> None:
    """from_file(path, name, limits, config) in the order the ABI documents."""
    path = tmp_path / "positional.wat"
    path.write_text(plugin_wat())
    plugin = Plugin.from_file(path, "named", Limits(pool_size=2), {"k": "v"})
    assert (plugin.name, plugin.limits.pool_size, plugin.config) == ("named", 2, {"k": "v"})
    assert Plugin.from_file(str(path)).name == "positional"


def test_import_count_is_capped() -> None:
    """1 000 imports of the allowed host function link; one more is refused before any import's
    type is read (a module may declare 100 000, each costing Python time to inspect)."""
    def log_imports(count: int) -> str:
        return "\n".join(f'(import "eventgateway" "log" (func $log{i} (param i32 i32 i32)))' for i in range(count))

    plugin = Plugin.from_bytes(plugin_wat(imports=log_imports(MAX_IMPORTS)), name="many-imports")
    assert plugin.subscriptions == [(EVENT_RECEIVED, "sync")]
    with pytest.raises(PluginLoadError, match=f"declares {MAX_IMPORTS + 1} imports; an ABI v1 plugin may import "
                       f"at most {MAX_IMPORTS}") as info:
        Plugin.from_bytes(plugin_wat(imports=log_imports(MAX_IMPORTS + 1)), name="too-many-imports")
    assert info.value.kind == "forbidden_import"


def test_thousands_of_exports_load() -> None:
    """20 000 exports (of one function, so compiling is quick). wasmtime-py's `Instance.exports()`
    is quadratic in them (30 s here, on every fresh instance); the host looks up only its own."""
    exports = "(func $helper) " + "\n".join(f'(export "helper{i}" (func $helper))' for i in range(20_000))
    assert Plugin.from_bytes(plugin_wat(extra=exports), name="many-exports").react({}) == Reaction()


def test_from_file_reads_no_more_than_the_size_limit(tmp_path: Path) -> None:
    """A device or pipe has no meaningful size: reading stops one byte past the limit."""
    with pytest.raises(PluginLoadError, match="/dev/zero is over the module size limit of 1024 bytes") as info:
        Plugin.from_file("/dev/zero", limits=Limits(max_module_bytes=1024))
    assert info.value.kind == "too_large"
    big = tmp_path / "big.wasm"
    big.write_bytes(b"\0asm" + b"\0" * 2000)
    with pytest.raises(PluginLoadError, match="over the module size limit") as info:
        Plugin.from_file(big, limits=Limits(max_module_bytes=1024))
    assert info.value.kind == "too_large"
    with pytest.raises(PluginLoadError, match="cannot read") as info:
        Plugin.from_file(tmp_path)  # a directory
    assert info.value.kind == "unreadable"
