"""Several ``python -m gateway serve --db etcd://...`` processes sharing one real etcd: every change made
through one gateway's Config API reaches the others' Events APIs; concurrent writers do not lose each
other's changes; an etcd outage leaves the Events API serving and the Config API answering 503; a
compaction during a partition is healed by a reload with no stale entry and no missed delete."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import wasmtime

from .etcd_server import TcpCutter
from .gateways import EVENT_TYPE, GatewayNode, cloudevent, function_server

REPO_ROOT = Path(__file__).resolve().parents[2]


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0) -> None:
    """Poll until ``check()`` holds: propagation is asynchronous by design (its delay is in bench/)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {timeout} s: {what}")


async def answers(client: httpx.AsyncClient, node: GatewayNode, path: str, status: int, body: str | None = None,
                  headers: dict[str, str] | None = None) -> bool:
    response = await node.emit(client, path, headers=headers)
    return response.status_code == status and (body is None or response.text == body)


async def store_up(client: httpx.AsyncClient, node: GatewayNode, value: int) -> bool:
    metrics = (await client.get(f"{node.config_url}/v1/metrics")).text
    return f"eventgateway_store_up {value}.0" in metrics.splitlines()


async def all_answer(client: httpx.AsyncClient, nodes: list[GatewayNode], path: str, status: int,
                     body: str | None = None, what: str = "") -> None:
    for node in nodes:
        await eventually(lambda node=node: answers(client, node, path, status, body),
                         f"gateway {node.name} answers {status} {body or ''} on {path} {what}")


async def test_every_kind_of_change_reaches_every_gateway(shared_etcd, cluster, unique_prefix):
    async with function_server() as fn, httpx.AsyncClient(timeout=10) as client:
        nodes = await cluster(f"etcd://{shared_etcd.endpoint}{unique_prefix}", 3)
        a, b, c = nodes

        # Event type and function through A, subscription through B: every gateway routes.
        await a.setup_function(client, "orders", fn.url("first"))
        sub_id = await b.subscribe(client, "orders", "/orders")
        await all_answer(client, nodes, "/orders", 200, "first", "after creates on A and B")

        # Function update through C.
        await c.config(client, "PUT", "/functions/orders",
                       {"functionId": "orders", "type": "http", "provider": {"url": fn.url("second")}})
        await all_answer(client, nodes, "/orders", 200, "second", "after a function update on C")

        # Event type update through A: an authorizer that denies; then removed again.
        await a.config(client, "POST", "/functions", {"functionId": "deny", "type": "http",
                                                        "provider": {"url": fn.deny_url}})
        await a.config(client, "PUT", f"/eventtypes/{EVENT_TYPE}", {"name": EVENT_TYPE, "authorizerId": "deny"})
        await all_answer(client, nodes, "/orders", 403, None, "after an event type update on A")
        refused = await c.emit(client, "/orders")
        assert refused.json() == {"errors": [{"message": "denied by the cluster test authorizer"}]}
        await b.config(client, "PUT", f"/eventtypes/{EVENT_TYPE}", {"name": EVENT_TYPE})
        await all_answer(client, nodes, "/orders", 200, "second", "after removing the authorizer on B")

        # CORS through B, deleted through C.
        origin = {"Origin": "https://shop.example"}
        cors = await b.config(client, "POST", "/cors", {"method": "POST", "path": "/orders",
                                                        "allowedOrigins": ["https://shop.example"]})
        cors_id = cors.json()["corsId"]

        async def allows_origin(node: GatewayNode, allowed: bool) -> bool:
            response = await node.emit(client, "/orders", headers=origin)
            return (response.headers.get("access-control-allow-origin") == "https://shop.example") == allowed

        for node in nodes:
            await eventually(lambda node=node: allows_origin(node, True), f"CORS created on B applied on {node.name}")
        # CORS updated through A: the origin is no longer allowed anywhere.
        await a.config(client, "PUT", f"/cors/{cors_id}", {"method": "POST", "path": "/orders",
                                                           "allowedOrigins": ["https://other.example"]})
        for node in nodes:
            await eventually(lambda node=node: allows_origin(node, False), f"CORS updated on A applied on {node.name}")
        await b.config(client, "PUT", f"/cors/{cors_id}", {"method": "POST", "path": "/orders",
                                                           "allowedOrigins": ["https://shop.example"]})
        for node in nodes:
            await eventually(lambda node=node: allows_origin(node, True), f"CORS updated on B applied on {node.name}")
        await c.config(client, "DELETE", f"/cors/{cors_id}")
        for node in nodes:
            await eventually(lambda node=node: allows_origin(node, False), f"CORS deleted on C gone from {node.name}")

        # An async subscription through C delivers events sent to A.
        await c.config(client, "POST", "/functions", {"functionId": "audit", "type": "http",
                                                        "provider": {"url": fn.url("audit")}})
        await c.subscribe(client, "audit", "/orders", kind="async")
        await eventually(lambda: answers(client, a, "/orders", 200, "second"), "sync route still on A")
        marker = cloudevent(data={"marker": "async-through-c"})

        async def audited() -> bool:
            await a.emit(client, "/orders", marker)
            return any(e.get("data") == {"marker": "async-through-c"} for e in fn.received.get("audit", []))

        await eventually(audited, "the async subscription created on C delivers events sent to A")

        # Subscription deleted through A: no gateway routes it any more (202, nothing delivered).
        await a.config(client, "DELETE", f"/subscriptions/{sub_id}")
        await all_answer(client, nodes, "/orders", 202, None, "after deleting the sync subscription on A")

        # Creates and deletes of documents that route nothing reach every view too (its gauges show them).
        async def gauge(node: GatewayNode, name: str, value: int) -> bool:
            metrics = (await client.get(f"{node.config_url}/v1/metrics")).text
            return f'eventgateway_{name}_total{{space="default"}} {value}.0' in metrics.splitlines()

        await c.config(client, "POST", "/eventtypes", {"name": "unused.type"})
        for node in nodes:
            await eventually(lambda node=node: gauge(node, "eventtypes", 2), f"event type created on C in {node.name}")
        await a.config(client, "DELETE", "/eventtypes/unused.type")
        await b.config(client, "DELETE", "/functions/deny")
        for node in nodes:
            await eventually(lambda node=node: gauge(node, "eventtypes", 1), f"event type deleted on A in {node.name}")
            await eventually(lambda node=node: gauge(node, "functions", 2), f"function deleted on B in {node.name}")


async def test_concurrent_writes_through_two_gateways(shared_etcd, cluster, unique_prefix):
    async with function_server() as fn, httpx.AsyncClient(timeout=20) as client:
        nodes = await cluster(f"etcd://{shared_etcd.endpoint}{unique_prefix}", 3)
        a, b, c = nodes
        await a.config(client, "POST", "/eventtypes", {"name": EVENT_TYPE})

        def function(fid: str, target: str) -> dict[str, object]:
            return {"functionId": fid, "type": "http", "provider": {"url": fn.url(target)}}

        # The same ids created at once through A and B: exactly one create of each wins.
        racing = [node.config(client, "POST", "/functions", function(f"f{i}", node.name), expect=(201, 409))
                  for i in range(10) for node in (a, b)]
        statuses = [r.status_code for r in await asyncio.gather(*racing)]
        assert statuses.count(201) == 10 and statuses.count(409) == 10
        # Distinct ids from both: none lost.
        await asyncio.gather(*(node.config(client, "POST", "/functions", function(f"{node.name}-{i}", "x"))
                               for i in range(10) for node in (a, b)))
        listed = (await c.config(client, "GET", "/functions")).json()["functions"]
        ids = {f["functionId"] for f in listed}
        assert {f"f{i}" for i in range(10)} | {f"A-{i}" for i in range(10)} | {f"B-{i}" for i in range(10)} <= ids

        # Interleaved updates of one function through A and B: each is applied on top of the revision it
        # read or refused with 409 (never applied over a change it did not see); every gateway ends on the
        # same last write, which is one that was acknowledged.
        await a.subscribe(client, "f0", "/race")
        racing = [node.config(client, "PUT", "/functions/f0", function("f0", f"{node.name}{i}"), expect=(200, 409))
                  for i in range(10) for node in (a, b)]
        answers_ = await asyncio.gather(*racing)
        accepted = {r.json()["provider"]["url"].rsplit("/", 1)[1] for r in answers_ if r.status_code == 200}
        for refused in (r for r in answers_ if r.status_code == 409):
            assert "changed by another request" in refused.json()["errors"][0]["message"]
        final = (await c.config(client, "GET", "/functions/f0")).json()["provider"]["url"].rsplit("/", 1)[1]
        assert final in accepted
        await all_answer(client, nodes, "/race", 200, final, "after racing updates")


async def test_etcd_outage_while_events_flow(etcd_factory, cluster):
    etcd = etcd_factory()
    async with function_server() as fn, httpx.AsyncClient(timeout=10) as client:
        nodes = await cluster(f"etcd://{etcd.endpoint}", 2)
        a, b = nodes
        await a.setup_function(client, "orders", fn.url("first"))
        await a.subscribe(client, "orders", "/orders")
        await all_answer(client, nodes, "/orders", 200, "first")

        statuses: list[int] = []
        stop = asyncio.Event()

        async def traffic() -> None:
            while not stop.is_set():
                for node in nodes:
                    statuses.append((await node.emit(client, "/orders")).status_code)
                await asyncio.sleep(0.01)

        flowing = asyncio.create_task(traffic())
        await asyncio.sleep(0.3)
        await asyncio.to_thread(etcd.stop)
        await asyncio.sleep(0.5)
        during_outage = len(statuses)

        refused = await a.config(client, "POST", "/subscriptions", {
            "type": "sync", "eventType": EVENT_TYPE, "functionId": "orders", "path": "/later"}, expect=503)
        message = refused.json()["errors"][0]["message"]
        assert "configuration store unavailable" in message and etcd.endpoint in message, message
        assert (await b.config(client, "GET", "/functions", expect=503)).json()["errors"]
        # What the gateway itself runs is still listed (from its plugin set, not from etcd).
        assert (await client.get(f"{a.config_url}/v1/plugins")).json() == {"plugins": []}
        assert (await client.get(f"{a.config_url}/v1/status")).status_code == 200
        for node in nodes:
            await eventually(lambda node=node: store_up(client, node, 0), f"gateway {node.name} reports etcd down")

        await asyncio.sleep(0.5)
        await asyncio.to_thread(etcd.start)

        async def written_through_b() -> bool:
            response = await b.config(client, "POST", "/subscriptions", {
                "type": "sync", "eventType": EVENT_TYPE, "functionId": "orders", "path": "/later"},
                expect=(201, 503))
            return response.status_code == 201

        await eventually(written_through_b, "B accepts writes once etcd is back", timeout=20)
        await all_answer(client, nodes, "/later", 200, "first", "after etcd came back")
        for node in nodes:
            await eventually(lambda node=node: store_up(client, node, 1), f"gateway {node.name} reports etcd up")
        stop.set()
        await flowing
        assert len(statuses) > during_outage + 10, "events kept flowing during the outage"
        assert set(statuses) == {200}, f"events refused while the view could route them: {set(statuses)}"


async def test_compaction_during_a_disconnect_reloads_without_stale_entries(etcd_factory, cluster):
    etcd = etcd_factory()
    cutter = TcpCutter(etcd.client_port)
    await cutter.heal()
    try:
        async with function_server() as fn, httpx.AsyncClient(timeout=10) as client:

            async def blocked_on(node: GatewayNode, status: int) -> bool:
                return (await node.emit(client, "/", cloudevent("blocked"))).status_code == status

            (a,) = await cluster(f"etcd://{etcd.endpoint}", 1)
            (c,) = await cluster(f"etcd://{cutter.endpoint}", 1)
            await a.setup_function(client, "orders", fn.url("first"))
            doomed = await a.subscribe(client, "orders", "/doomed")
            await a.subscribe(client, "orders", "/keep")
            await all_answer(client, [c], "/doomed", 200, "first")
            await all_answer(client, [c], "/keep", 200, "first")
            # A plugin too: uploaded before the cut, deleted during it.
            guard = bytes(wasmtime.wat2wasm((REPO_ROOT / "plugin_examples" / "wat" / "guard.wat").read_text()))
            uploaded = await client.post(f"{a.config_url}/v1/plugins", content=guard, params={
                "name": "guard", "settings": '{"config": {"denyTypes": ["blocked"]}}'},
                headers={"content-type": "application/wasm"})
            assert uploaded.status_code == 201, uploaded.text
            await eventually(lambda: blocked_on(c, 403), "the guard uploaded on A rejects on C")

            await cutter.cut()
            assert (await client.delete(f"{a.config_url}/v1/plugins/guard")).status_code == 204
            await a.config(client, "DELETE", f"/subscriptions/{doomed}")
            await a.subscribe(client, "orders", "/fresh")
            await a.config(client, "PUT", "/functions/orders",
                           {"functionId": "orders", "type": "http", "provider": {"url": fn.url("second")}})
            await asyncio.to_thread(etcd.compact)
            # Cut off, C keeps serving what it last saw.
            assert await answers(client, c, "/keep", 200, "first")
            assert await answers(client, c, "/doomed", 200, "first")
            assert await blocked_on(c, 403)

            await cutter.heal()
            await all_answer(client, [c], "/doomed", 202, None, "the delete missed during the cut")
            await all_answer(client, [c], "/fresh", 200, "second", "the create missed during the cut")
            await all_answer(client, [c], "/keep", 200, "second", "the update missed during the cut")
            await eventually(lambda: blocked_on(c, 202), "the plugin delete missed during the cut")
            assert (await client.get(f"{c.config_url}/v1/plugins")).json() == {"plugins": []}
            assert "reload" in c.log().lower()
    finally:
        await cutter.cut()


async def test_plugin_uploaded_on_one_gateway_runs_on_all(shared_etcd, cluster, unique_prefix):
    wasm = bytes(wasmtime.wat2wasm((REPO_ROOT / "plugin_examples" / "wat" / "guard.wat").read_text()))
    sha256 = hashlib.sha256(wasm).hexdigest()
    async with httpx.AsyncClient(timeout=30) as client:
        nodes = await cluster(f"etcd://{shared_etcd.endpoint}{unique_prefix}", 3)
        a, _, c = nodes
        for node in nodes:
            assert (await node.emit(client, "/", cloudevent("blocked"))).status_code == 202
        uploaded = await client.post(f"{a.config_url}/v1/plugins", content=wasm,
                                     params={"name": "guard", "settings": '{"config": {"denyTypes": ["blocked"]}}'},
                                     headers={"content-type": "application/wasm"})
        assert uploaded.status_code == 201, uploaded.text

        async def guarded(node: GatewayNode) -> bool:
            response = await node.emit(client, "/", cloudevent("blocked"))
            return response.status_code == 403

        for node in nodes:
            await eventually(lambda node=node: guarded(node), f"the guard uploaded on A rejects on {node.name}")
            shown = (await client.get(f"{node.config_url}/v1/plugins/guard")).json()
            assert shown["sha256"] == sha256 and shown["state"] == "active"
            assert (await node.emit(client, "/", cloudevent("fine"))).status_code == 202

        assert (await client.delete(f"{c.config_url}/v1/plugins/guard")).status_code == 204

        async def unguarded(node: GatewayNode) -> bool:
            return (await node.emit(client, "/", cloudevent("blocked"))).status_code == 202

        for node in nodes:
            await eventually(lambda node=node: unguarded(node), f"the guard deleted on C is gone from {node.name}")


async def test_gateway_on_etcd_with_tls_and_auth_flags(etcd_factory, cluster, tmp_path):
    etcd = etcd_factory(tls=True)
    etcd.enable_gateway_auth()
    tls = etcd.tls
    flags = ["--db-ca", str(tls.ca), "--db-cert", str(tls.cert("client")), "--db-key", str(tls.key("client")),
             "--db-user", "gw", "--db-password", "gwpw"]
    async with function_server() as fn, httpx.AsyncClient(timeout=10) as client:
        a, b = await cluster(f"etcd://{etcd.endpoint}", 2, flags)
        await a.setup_function(client, "orders", fn.url("tls"))
        await a.subscribe(client, "orders", "/orders")
        await all_answer(client, [a, b], "/orders", 200, "tls", "through TLS and etcd auth")
    stored = etcd.etcdctl("--user", "root:rootpw", "get", "--prefix", "--keys-only", "/eventgateway/v1/functions/")
    assert stored.stdout.split() == ["/eventgateway/v1/functions/default/orders"]


async def test_bad_etcd_flags_stop_the_gateway_with_the_reason(tmp_path):
    from .gateways import GatewayNode

    missing = GatewayNode("X", "etcd://127.0.0.1:2379", tmp_path, ["--db-ca", str(tmp_path / "nope.pem")])
    missing.start()
    assert missing.process.wait(30) != 0
    assert f"--db-ca '{tmp_path / 'nope.pem'}' is not a readable file" in missing.log()

    from .etcd_server import free_port

    port = free_port()
    nobody = GatewayNode("Y", f"etcd://127.0.0.1:{port}", tmp_path)
    nobody.start()
    assert nobody.process.wait(30) != 0
    assert f"etcd at 127.0.0.1:{port} did not answer" in nobody.log()


async def test_a_gateway_refuses_a_stored_module_whose_sha256_does_not_match(shared_etcd, cluster, unique_prefix):
    """Every gateway checks the module it assembles from etcd against the plugin's sha256."""
    import base64
    import json

    wasm = bytes(wasmtime.wat2wasm((REPO_ROOT / "plugin_examples" / "wat" / "guard.wat").read_text()))
    sha256 = hashlib.sha256(wasm).hexdigest()
    db = f"etcd://{shared_etcd.endpoint}{unique_prefix}"
    async with httpx.AsyncClient(timeout=30) as client:
        (a,) = await cluster(db, 1)
        uploaded = await client.post(f"{a.config_url}/v1/plugins", content=wasm,
                                     params={"name": "guard", "settings": '{"config": {"denyTypes": ["blocked"]}}'},
                                     headers={"content-type": "application/wasm"})
        assert uploaded.status_code == 201, uploaded.text

        # Someone with etcd access swaps the module bytes behind the gateways' back.
        chunk_key = f"{unique_prefix}plugins/modules/{sha256}-0"
        chunk = json.loads(shared_etcd.etcdctl("get", "--print-value-only", chunk_key).stdout)
        chunk["data"] = base64.b64encode(wasm + b"\0").decode()
        shared_etcd.etcdctl("put", chunk_key, json.dumps(chunk))

        (b,) = await cluster(db, 1)
        shown = (await client.get(f"{b.config_url}/v1/plugins/guard")).json()
        assert shown["state"] == "failed", shown
        assert "do not hash to it" in json.dumps(shown)
        assert (await b.emit(client, "/", cloudevent("blocked"))).status_code == 202


async def test_plugin_update_on_one_gateway_while_another_serves_events(shared_etcd, cluster, unique_prefix):
    """A load generator sends events to gateway B while the enricher plugin (which stamps what the function
    receives) is reconfigured from v1 to v2 through gateway A: B reloads from its etcd watch with every event
    answered 200 and delivered exactly once, stamped by one version; events sent once B lists v2 get v2."""
    import json
    import uuid

    wasm = bytes(wasmtime.wat2wasm((REPO_ROOT / "plugin_examples" / "wat" / "enricher.wat").read_text()))
    async with function_server() as fn, httpx.AsyncClient(timeout=30) as client:
        a, b = await cluster(f"etcd://{shared_etcd.endpoint}{unique_prefix}", 2)
        await a.setup_function(client, "recorder", fn.url("recorder"))
        await a.subscribe(client, "recorder", "/orders")
        uploaded = await client.post(f"{a.config_url}/v1/plugins", content=wasm, params={
            "name": "enricher", "settings": json.dumps({"config": {"fields": {"version": "v1"}}})},
            headers={"content-type": "application/wasm"})
        assert uploaded.status_code == 201, uploaded.text

        async def b_has(version: str) -> bool:
            shown = (await client.get(f"{b.config_url}/v1/plugins/enricher")).json()
            return shown.get("settings", {}).get("config") == {"fields": {"version": version}}

        await eventually(lambda: b_has("v1"), "B loaded the enricher")
        await all_answer(client, [b], "/orders", 200, "recorder")
        fn.received.clear()

        total, sent, answers_ = 240, [], []
        b_switched_at: list[float] = []

        async def worker(count: int) -> None:
            for _ in range(count):
                event = cloudevent(data={"id": str(uuid.uuid4())})
                started = time.monotonic()
                response = await b.emit(client, "/orders", event)
                sent.append((event["id"], started))
                answers_.append(response.status_code)

        async def update_midway() -> None:
            while len(sent) < total // 3:
                await asyncio.sleep(0.01)
            updated = await client.put(f"{a.config_url}/v1/plugins/enricher",
                                       json={"config": {"fields": {"version": "v2"}}})
            assert updated.status_code == 200, updated.text
            while not await b_has("v2"):
                await asyncio.sleep(0.005)
            b_switched_at.append(time.monotonic())

        await asyncio.gather(update_midway(), *(worker(total // 4) for _ in range(4)))

    assert answers_ == [200] * total
    received = fn.received["recorder"]
    stamps = {event["id"]: event["data"]["version"] for event in received}
    assert len(received) == total and stamps.keys() == {event_id for event_id, _ in sent}  # none lost or twice
    assert set(stamps.values()) == {"v1", "v2"}
    after = [event_id for event_id, started in sent if started > b_switched_at[0]]
    assert after and all(stamps[event_id] == "v2" for event_id in after)
