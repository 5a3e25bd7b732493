"""A plugin's replacement event must stay within the JSON data model (ABI.md section 2.1): functions
receive events as JSON, which has no msgpack ``bin`` or ``ext`` values. Such a replacement is the
plugin's ``bad_output`` fault, refused where the rewrite happens, not a failure later in the path."""

from __future__ import annotations

import json
from typing import Any

import msgpack
import pytest
from tests.gateway.pipeline.event_plane_harness import FunctionServer, GatewayFactory, event_gateway, recorder  # noqa: F401
from tests.wat import kit_plugin

from gateway.plugins.manager import validate_replacement

RECEIVED = "eventgateway.event.received"
INVOKING = "eventgateway.function.invoking"
CE = {"content-type": "application/cloudevents+json"}


def _replacement(**data: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "type": "order.placed", "source": "/rewritten", "id": "r1", "data": data}


def _event() -> bytes:
    return json.dumps({"specversion": "1.0", "type": "order.placed", "source": "/t", "id": "e1",
                       "data": {"card": "4111"}}).encode()


@pytest.mark.parametrize(("value", "named"), [
    (b"\x00\x01", "bin"),
    (msgpack.ExtType(5, b"xyz"), "ext"),
    (msgpack.Timestamp(1, 0), "ext"),
])
def test_validator_refuses_bin_and_ext_values_naming_where(value: Any, named: str) -> None:
    with pytest.raises(ValueError, match=named) as caught:
        validate_replacement(_replacement(items=[{"ok": 1}, {"blob": value}]))
    assert "data.items[1].blob" in str(caught.value)
    with pytest.raises(ValueError, match=named):
        validate_replacement({**_replacement(), "partnerblob": value})  # an extension attribute


def test_validator_accepts_the_json_data_model() -> None:
    validate_replacement(_replacement(s="x", i=-(2**63), u=2**64 - 1, f=1.5, b=True, n=None, a=[[], {}]))


@pytest.mark.parametrize("stage", [RECEIVED, INVOKING])
async def test_a_bin_replacement_is_the_plugins_bad_output_fault(event_gateway: GatewayFactory,  # noqa: F811
                                                                recorder: FunctionServer, stage: str) -> None:  # noqa: F811
    plugin = kit_plugin([(stage, "sync")], {"event": _replacement(blob=b"\x00\xff")})
    gw = await event_gateway(plugins=[plugin])
    await gw.function("fn", recorder.target("fn"))
    await gw.subscribe("sync", "order.placed", "fn", path="/orders")
    await gw.function("later", recorder.target("later"))
    await gw.subscribe("async", "order.placed", "later", path="/queue")

    response = await gw.client.post("/orders", content=_event(), headers=CE)
    assert response.status_code == 503  # the failure policy is closed: the plugin's fault, not a 500
    assert "bad_output" in response.json()["errors"][0]["message"]
    assert recorder.received["fn"] == []
    assert (await gw.client.post("/queue", content=_event(), headers=CE)).status_code == (503 if stage == RECEIVED
                                                                                          else 202)
    await gw.plane.settle(5)
    assert recorder.received["later"] == []
