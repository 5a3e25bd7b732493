"""Large and hostile events through every language's build of each example, under the host's real
default sync fuel budget (10M).

- Many data items: what a plugin does not read must cost it (almost) nothing, and what it reads must
  fit the sync budget for a realistic event, in every language.
- 100k nested arrays: the host never sends this (its encoder stops at 511 levels, its JSON parser at
  about 1000), so the bytes are built by hand. A kit may refuse them (an error reaction
  naming the depth limit), skip them without recursion, or run out of fuel; the host turns a trap into
  a fault. Never may it take the host down, and the plugin must serve the next event. The bytes go
  in through `Plugin.react_encoded`, the host's entry for an event encoded once for several plugins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack
import pytest

from plugin_examples.build import LANGUAGES
from tests.conformance.conftest import LoadedExample
from tests.conformance.scenarios import cloudevent_v1, enriched, invoking, received
from wasm_abi import Limits, PluginFault, Reaction

Load = Callable[..., LoadedExample]
CONTINUE = Reaction()
#: Enough items that walking them twice per lookup (as the C and Zig kits once did) ran out of sync
#: fuel, few enough that the kits which decode the whole event (Rust, AssemblyScript, Go) fit it.
ITEMS = 2_000
DEPTH = 100_000
GUARD_CONFIG = {"denyData": {"role": "root"}}
#: Kits that read msgpack in place rather than decoding the whole event first.
IN_PLACE_KITS = ("wat", "c", "zig")



def _big_data(**fields: Any) -> dict[str, Any]:
    return {"items": list(range(ITEMS)), "names": [f"n{i}" for i in range(ITEMS // 4)], **fields}


def _checked(reaction: Reaction) -> Reaction:
    assert reaction.fuel_used is not None and reaction.fuel_used < Limits().sync_fuel
    return Reaction(error=reaction.error, status=reaction.status, event=reaction.event)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_many_data_items_fit_the_sync_budget(lang: str, load_example: Load) -> None:
    logger = load_example(lang, "logger")
    event = cloudevent_v1("user.created", _big_data())
    assert _checked(logger.plugin.react(received(event))) == CONTINUE
    assert logger.take_logs() == [("info", "received event user.created")]

    guard = load_example(lang, "guard", GUARD_CONFIG)
    assert _checked(guard.plugin.react(received(event))) == CONTINUE
    denied = cloudevent_v1("user.created", _big_data(role="root"))  # after the items: the guard walks past them
    assert _checked(guard.plugin.react(received(denied))) == Reaction(
        error="guard: data field role is denied", status=403)

    enricher = load_example(lang, "enricher")
    assert _checked(enricher.plugin.react(invoking(event, "fn"))) == Reaction(event=enriched(event, "fn"))


@pytest.mark.parametrize("lang", IN_PLACE_KITS)
def test_in_place_kits_do_not_pay_for_data_they_do_not_read(lang: str, load_example: Load) -> None:
    """Fuel is deterministic: the logger and the guard read the type and one data field, so with the
    WAT, C and Zig kits a 2,000-item array after that field must not cost them a single instruction.
    (The Rust, AssemblyScript and Go kits decode the whole event, so their cost grows with it.)"""
    for example, config in (("logger", None), ("guard", GUARD_CONFIG)):
        plugin = load_example(lang, example, config).plugin
        small = plugin.react(received(cloudevent_v1("user.created", {"role": "user"})))
        large = plugin.react(received(cloudevent_v1("user.created", {"role": "user", **_big_data()})))
        assert (small, large) == (CONTINUE, CONTINUE)
        assert large.fuel_used == small.fuel_used, (example, small.fuel_used, large.fuel_used)


def _hostile(system_event: dict[str, Any]) -> bytes:
    """The event's msgpack with data.event.data.deep replaced by DEPTH nested one-item arrays."""
    marker = "\x00deep-placeholder\x00"
    encoded = msgpack.packb(system_event, use_bin_type=True)
    placeholder = msgpack.packb(marker)
    assert encoded.count(placeholder) == 1
    return encoded.replace(placeholder, b"\x91" * DEPTH + b"\xc0")


CASES = [
    ("logger", None, received),
    ("guard", GUARD_CONFIG, received),
    ("enricher", None, lambda event: invoking(event, "fn")),
]


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("example, config, wrap", CASES, ids=[case[0] for case in CASES])
def test_deeply_nested_event_never_hurts_the_host(
    lang: str, example: str, config: dict[str, Any] | None, wrap: Callable[[dict[str, Any]], dict[str, Any]],
    load_example: Load,
) -> None:
    hostile = wrap(cloudevent_v1("user.created", {"role": "user", "deep": "\x00deep-placeholder\x00"}))
    plugin = load_example(lang, example, config).plugin
    try:
        reaction = plugin.react_encoded(_hostile(hostile), hostile["type"])
    except PluginFault as fault:
        # only copying the whole nest (the in-place kits' enricher) may exhaust the budget or the stack
        assert lang in IN_PLACE_KITS and example == "enricher", fault
        assert fault.kind in ("out_of_fuel", "trap"), fault
    else:
        if lang not in IN_PLACE_KITS:  # decoding kits refuse past 512 levels
            assert "nested deeper than 512" in (reaction.error or ""), reaction
        elif example != "enricher":  # in-place kits never walk what the logger and guard do not read
            assert reaction == CONTINUE, reaction
    # a faulted instance was replaced by the host; either way the plugin serves the next event
    normal = wrap(cloudevent_v1("user.created", {"role": "root" if example == "guard" else "user"}))
    expected = {
        "logger": CONTINUE,
        "guard": Reaction(error="guard: data field role is denied", status=403),
        "enricher": Reaction(event=enriched(normal["data"]["event"], "fn")),
    }[example]
    assert plugin.react(normal) == expected
