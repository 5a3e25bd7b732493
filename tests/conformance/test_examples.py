"""The conformance suite: every language's build of each example, through the real host
(`wasm_abi.Plugin`), with the same inputs and the same expected reactions and log lines."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from plugin_examples.build import LANGUAGES
from tests.conformance.conftest import LoadedExample
from tests.conformance.scenarios import (
    GUARD_CONFIG,
    GUARD_INVALID_CONFIGS,
    cloudevent_v01,
    cloudevent_v1,
    enriched,
    invocation_failed,
    invoked,
    invoking,
    received,
)
from wasm_abi import PluginLoadError, Reaction

Load = Callable[..., LoadedExample]
CONTINUE = Reaction()

pytestmark = pytest.mark.parametrize("lang", LANGUAGES)


# -- logger -----------------------------------------------------------------------------------


def test_logger_subscribes_sync_to_event_received(lang: str, load_example: Load) -> None:
    logger = load_example(lang, "logger")
    assert logger.plugin.subscriptions == [("eventgateway.event.received", "sync")]


def test_logger_logs_the_type_of_each_event_and_continues(lang: str, load_example: Load) -> None:
    logger = load_example(lang, "logger")
    events = [
        cloudevent_v1("user.created", {"name": "ada"}),
        cloudevent_v01("legacy.thing", "plain text"),
        cloudevent_v1("a.b.c", None),
        cloudevent_v1("big.one", {"blob": "x" * 100_000, "list": list(range(1000))}),
    ]
    for event in events:
        assert logger.plugin.react(received(event)) == CONTINUE
    assert logger.take_logs() == [
        ("info", "received event user.created"),
        ("info", "received event legacy.thing"),
        ("info", "received event a.b.c"),
        ("info", "received event big.one"),
    ]


def test_logger_keeps_working_over_many_events(lang: str, load_example: Load) -> None:
    """Scratch memory must be reused between calls, not leaked or overwritten while still in use."""
    logger = load_example(lang, "logger")
    for i in range(300):
        assert logger.plugin.react(received(cloudevent_v1(f"type.{i}", {"i": i, "pad": "p" * i}))) == CONTINUE
    assert logger.take_logs() == [("info", f"received event type.{i}") for i in range(300)]


# -- guard ------------------------------------------------------------------------------------


def test_guard_without_config_lets_everything_through(lang: str, load_example: Load) -> None:
    guard = load_example(lang, "guard")
    assert guard.plugin.subscriptions == [("eventgateway.event.received", "sync")]
    for event in (cloudevent_v1("user.deleted", {"role": "root"}), cloudevent_v01("legacy.purge")):
        assert guard.plugin.react(received(event)) == CONTINUE


def test_guard_rejects_denied_types_with_403(lang: str, load_example: Load) -> None:
    guard = load_example(lang, "guard", GUARD_CONFIG)
    assert guard.plugin.react(received(cloudevent_v1("user.deleted", {"id": 1}))) == Reaction(
        error="guard: event type user.deleted is denied", status=403
    )
    assert guard.plugin.react(received(cloudevent_v01("legacy.purge"))) == Reaction(
        error="guard: event type legacy.purge is denied", status=403
    )
    assert guard.plugin.react(received(cloudevent_v1("user.created", {"id": 1}))) == CONTINUE


def test_guard_rejects_denied_data_fields_in_config_order(lang: str, load_example: Load) -> None:
    guard = load_example(lang, "guard", GUARD_CONFIG)
    react = guard.plugin.react
    assert react(received(cloudevent_v1("user.created", {"user": "mallory", "role": "root"}))) == Reaction(
        error="guard: data field role is denied", status=403
    )
    assert react(received(cloudevent_v1("user.created", {"user": "mallory"}))) == Reaction(
        error="guard: data field user is denied", status=403
    )
    assert react(received(cloudevent_v01("user.created", {"user": "mallory"}))) == Reaction(
        error="guard: data field user is denied", status=403
    )


def test_guard_passes_near_misses(lang: str, load_example: Load) -> None:
    guard = load_example(lang, "guard", GUARD_CONFIG)
    near_misses = [
        cloudevent_v1("user.deleted.not", {"role": "admin"}),
        cloudevent_v1("user.created", {"role": "roots", "user": "Mallory"}),
        cloudevent_v1("user.created", {"role": ["root"], "user": {"name": "mallory"}}),
        cloudevent_v1("user.created", {"nested": {"role": "root"}}),
        cloudevent_v1("user.created", "role=root"),
        cloudevent_v1("user.created", ["root", "mallory"]),
        cloudevent_v1("user.created", None),
    ]
    for event in near_misses:
        assert guard.plugin.react(received(event)) == CONTINUE, event


def test_guard_looks_past_keys_that_are_not_strings(lang: str, load_example: Load) -> None:
    """Events from JSON only have string keys, but a kit's lookups must step over any other key type
    (a bin key spelled "role" is not the string key "role")."""
    guard = load_example(lang, "guard", GUARD_CONFIG)
    odd_keys = {1: "one", None: "nil", b"role": "root", 2.5: "float", -7: ["root"]}
    assert guard.plugin.react(received(cloudevent_v1("user.created", {**odd_keys, "role": "root"}))) == Reaction(
        error="guard: data field role is denied", status=403
    )
    assert guard.plugin.react(received(cloudevent_v1("user.created", odd_keys))) == CONTINUE


def test_guard_uses_the_configured_status(lang: str, load_example: Load) -> None:
    guard = load_example(lang, "guard", {**GUARD_CONFIG, "status": 451})
    assert guard.plugin.react(received(cloudevent_v1("user.created", {"role": "root"}))) == Reaction(
        error="guard: data field role is denied", status=451
    )


@pytest.mark.parametrize("config, key", GUARD_INVALID_CONFIGS, ids=[repr(c) for c, _ in GUARD_INVALID_CONFIGS])
def test_guard_refuses_a_config_of_the_wrong_shape(
    lang: str, load_example: Load, config: dict[str, Any], key: str
) -> None:
    with pytest.raises(PluginLoadError) as raised:
        load_example(lang, "guard", config)
    assert raised.value.kind == "init_rejected"
    message = str(raised.value)
    assert "guard: invalid config: " in message
    assert key in message.split("guard: invalid config: ", 1)[1], message


# -- enricher ---------------------------------------------------------------------------------


def test_enricher_subscriptions(lang: str, load_example: Load) -> None:
    enricher = load_example(lang, "enricher")
    assert enricher.plugin.subscriptions == [
        ("eventgateway.function.invoking", "sync"),
        ("eventgateway.function.invoked", "async"),
        ("eventgateway.function.invocationFailed", "async"),
    ]


def test_enricher_adds_trace_and_function_ids(lang: str, load_example: Load) -> None:
    enricher = load_example(lang, "enricher")
    event = cloudevent_v1("order.placed", {"order": 42, "items": [{"sku": "a", "qty": 2}], "note": None})
    assert enricher.plugin.react(invoking(event, "fn-orders")) == Reaction(event=enriched(event, "fn-orders"))
    legacy = cloudevent_v01("order.placed", {"order": 7})
    assert enricher.plugin.react(invoking(legacy, "fn-legacy")) == Reaction(event=enriched(legacy, "fn-legacy"))
    assert enricher.take_logs() == []


def test_enricher_config_fields_override(lang: str, load_example: Load) -> None:
    fields = {"region": "eu-west-1", "traceId": "from-config", "team": "payments"}
    enricher = load_example(lang, "enricher", {"fields": fields})
    event = cloudevent_v1("order.placed", {"order": 42, "region": "us-east-1", "functionId": "stale"})
    reaction = enricher.plugin.react(invoking(event, "fn-orders"))
    assert reaction == Reaction(event=enriched(event, "fn-orders", fields))
    assert reaction.event is not None and reaction.event["data"]["traceId"] == "from-config"


def test_enricher_leaves_non_map_data_alone(lang: str, load_example: Load) -> None:
    enricher = load_example(lang, "enricher", {"fields": {"region": "eu"}})
    for data in ("text", [1, 2], 5, None):
        assert enricher.plugin.react(invoking(cloudevent_v1("order.placed", data))) == CONTINUE


def test_enricher_counts_outcomes(lang: str, load_example: Load) -> None:
    enricher = load_example(lang, "enricher")
    event = cloudevent_v1("order.placed", {"order": 1})
    react = enricher.plugin.react
    assert react(invoked(event, "fn-a"), mode="async") == CONTINUE
    assert react(invocation_failed(event, "connection refused", "fn-b"), mode="async") == CONTINUE
    assert react(invoked(event, "fn-a"), mode="async") == CONTINUE
    assert react(invocation_failed(event, "HTTP 500", "fn-a"), mode="async") == CONTINUE
    assert enricher.take_logs() == [
        ("info", "function fn-a invoked: 1 ok, 0 failed"),
        ("warn", "function fn-b failed: connection refused; 1 ok, 1 failed"),
        ("info", "function fn-a invoked: 2 ok, 1 failed"),
        ("warn", "function fn-a failed: HTTP 500; 2 ok, 2 failed"),
    ]
