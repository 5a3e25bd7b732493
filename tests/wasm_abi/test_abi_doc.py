"""ABI.md says what the host does: the worked example of section 9 replayed byte by byte, `_start` ignored,
the init reply rules and the errno table."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import msgpack
import pytest

import wasm_abi
from wasm_abi import EVENT_RECEIVED, Plugin, PluginLoadError, Reaction, imports, system_event

from tests.wat import plugin_wat

ABI = (Path(wasm_abi.__file__).parent / "ABI.md").read_text()
SECTION_9 = ABI[ABI.index("## 9. Worked example"):ABI.index("## 10. Versioning")]
MakePlugin = Callable[..., Plugin]



def test_the_worked_example_input_is_the_hosts_encoding() -> None:
    incoming = {"specversion": "1.0", "type": "user.created", "source": "/app", "id": "e1", "data": {"n": 1}}
    event = system_event(EVENT_RECEIVED, {"event": incoming, "path": "/",
                                          "headers": {"Content-Type": "application/json"}},
                         event_id="s1", time="2026-01-01T00:00:00.000Z")
    dumped = bytes.fromhex("".join(line[6:54] for line in re.findall(r"^   ([0-9a-f]{4}  .*)$", SECTION_9, re.M)))
    assert dumped == msgpack.packb(event, use_bin_type=True)
    assert len(dumped) == 284


def test_the_worked_example_reply_is_a_rejection(make_plugin: MakePlugin) -> None:
    reply = bytes.fromhex("82 a5 65 72 72 6f 72 a6 64 65 6e 69 65 64 a6 73 74 61 74 75 73 cd 01 c3")
    assert msgpack.unpackb(reply) == {"error": "denied", "status": 451}
    assert "(0x10400 << 32) | 24` = `0x0001_0400_0000_0018` (the i64\n   `285873023221784`" in SECTION_9
    assert (0x10400 << 32) | 24 == 0x0001_0400_0000_0018 == 285873023221784
    plugin = make_plugin(reaction={"error": "denied", "status": 451})
    assert plugin.react(system_event(EVENT_RECEIVED, {"event": {"type": "x"}, "path": "/", "headers": {}})) == \
        Reaction(error="denied", status=451)


def test_start_is_never_called(make_plugin: MakePlugin) -> None:
    plugin = make_plugin(extra='(func (export "_start") unreachable)')
    assert plugin.react({"type": "x"}) == Reaction()


@pytest.mark.parametrize(("reply", "loads"), [
    ({"status": 451}, True),                         # status alone: no effect
    ({"whatever": [1, 2]}, True),                    # unknown keys: ignored
    ({"event": {"type": "x.y"}}, True),              # a valid event: no effect
    ({"error": 5}, False),                           # wrong types: bad_output
    ({"status": "x"}, False),
    ({"event": 5}, False),
])
def test_the_init_reply_rules(make_plugin: MakePlugin, reply: dict[str, object], loads: bool) -> None:
    body = msgpack.packb(reply)
    init = f"(i64.or (i64.shl (i64.const 3072) (i64.const 32)) (i64.const {len(body)}))"
    data = "".join(f"\\{b:02x}" for b in body)
    extra = f'(data (i32.const 3072) "{data}")'
    if loads:
        make_plugin(init=init, extra=extra)
    else:
        with pytest.raises(PluginLoadError) as caught:
            make_plugin(init=init, extra=extra)
        assert caught.value.kind == "bad_output"


def test_the_errno_table_matches_the_host() -> None:
    rows = dict(re.findall(r"^\| `(E?[A-Z]+)` \| (\d+) \|", ABI, re.M))
    assert rows == {"SUCCESS": str(imports._ERRNO_SUCCESS), "EAGAIN": str(imports._ERRNO_AGAIN),
                    "EBADF": str(imports._ERRNO_BADF), "EFAULT": str(imports._ERRNO_FAULT),
                    "EINVAL": str(imports._ERRNO_INVAL)}


def test_the_python_api_is_documented_outside_the_abi() -> None:
    assert "## 9. The host's Python surface" not in ABI
    doc = (Path(__file__).resolve().parents[2] / "docs" / "python-host.md").read_text()
    for name in ("Plugin.from_file", "react_encoded", "close()", "InputTooLarge", "NoIdleInstance", "with Plugin"):
        assert name in doc


def test_tests_wat_is_still_what_builds_these_plugins() -> None:
    assert "eventgateway_abi_v1" in plugin_wat()
