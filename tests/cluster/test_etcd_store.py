"""The etcd Store against a real etcd server: atomic writes, snapshots, watches, outages and compaction."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.store.base import (
    AlreadyExists,
    Change,
    Kind,
    NotFound,
    RevisionConflict,
    StoreError,
    StoreUnavailable,
    WatchReset,
)
from gateway.store.etcd import EtcdStore, key_for, parse_etcd_url

from .etcd_server import TcpCutter


async def next_changes(watch, count: int, timeout: float = 10.0) -> list[Change]:
    return [await asyncio.wait_for(anext(watch), timeout) for _ in range(count)]


async def test_crud_round_trip_and_errors(shared_etcd, store_factory, unique_prefix):
    store = await store_factory(shared_etcd.endpoint, unique_prefix)
    created = await store.create(Kind.FUNCTIONS, "default", "hello", {"functionId": "hello", "n": 1})
    assert (await store.get(Kind.FUNCTIONS, "default", "hello")) == created
    with pytest.raises(AlreadyExists, match="functions 'hello' already exists in space 'default'"):
        await store.create(Kind.FUNCTIONS, "default", "hello", {"n": 2})

    updated = await store.update(Kind.FUNCTIONS, "default", "hello", {"n": 2}, expected_revision=created.revision)
    assert updated.revision > created.revision
    with pytest.raises(RevisionConflict, match=f"changed since revision {created.revision}"):
        await store.update(Kind.FUNCTIONS, "default", "hello", {"n": 3}, expected_revision=created.revision)
    with pytest.raises(RevisionConflict):
        await store.delete(Kind.FUNCTIONS, "default", "hello", expected_revision=created.revision)
    with pytest.raises(NotFound, match="functions 'nope' not found in space 'default'"):
        await store.update(Kind.FUNCTIONS, "default", "nope", {"n": 1})
    with pytest.raises(NotFound):
        await store.delete(Kind.FUNCTIONS, "default", "nope")

    await store.create(Kind.FUNCTIONS, "default", "another", {"n": 0})
    await store.create(Kind.FUNCTIONS, "other", "hello", {"n": 9})
    assert [e.id for e in await store.list(Kind.FUNCTIONS, "default")] == ["another", "hello"]
    assert [(e.space, e.id) for e in await store.list(Kind.FUNCTIONS)] == [
        ("default", "another"), ("default", "hello"), ("other", "hello")]
    assert await store.list(Kind.EVENT_TYPES) == []

    await store.delete(Kind.FUNCTIONS, "default", "hello", expected_revision=updated.revision)
    assert await store.get(Kind.FUNCTIONS, "default", "hello") is None
    assert (await store.get(Kind.FUNCTIONS, "other", "hello")).value == {"n": 9}


async def test_key_layout_as_seen_by_etcdctl(shared_etcd, store_factory, unique_prefix):
    """Documented layout: <prefix><kind>/<space>/<id>, space and id percent-encoded (ids hold paths)."""
    store = await store_factory(shared_etcd.endpoint, unique_prefix)
    await store.create(Kind.SUBSCRIPTIONS, "team a", "http,POST,/users/:id", {"path": "/users/:id"})
    await store.create(Kind.CORS, "default", "GET%2F", {"method": "GET"})
    keys = shared_etcd.etcdctl("get", "--prefix", "--keys-only", unique_prefix).stdout.split()
    assert keys == [
        f"{unique_prefix}cors/default/GET%252F",
        f"{unique_prefix}subscriptions/team%20a/http%2CPOST%2C%2Fusers%2F%3Aid",
    ]
    assert key_for(unique_prefix, Kind.CORS, "default", "GET%2F").decode() == keys[0]
    entry = await store.get(Kind.SUBSCRIPTIONS, "team a", "http,POST,/users/:id")
    assert entry is not None and entry.value == {"path": "/users/:id"}
    assert (await store.get(Kind.CORS, "default", "GET%2F")).id == "GET%2F"


async def test_concurrent_creates_and_updates_through_two_connections(shared_etcd, store_factory, unique_prefix):
    """Two gateways racing: exactly one create wins, and no update is silently lost."""
    a = await store_factory(shared_etcd.endpoint, unique_prefix)
    b = await store_factory(shared_etcd.endpoint, unique_prefix)
    results = await asyncio.gather(
        *(s.create(Kind.EVENT_TYPES, "default", f"t{i}", {"by": n}) for i in range(20) for n, s in ((1, a), (2, b))),
        return_exceptions=True,
    )
    assert sum(isinstance(r, AlreadyExists) for r in results) == 20
    assert sum(not isinstance(r, Exception) for r in results) == 20

    # Read-modify-write counters from both connections, retrying on conflict: every increment survives.
    await a.create(Kind.EVENT_TYPES, "default", "counter", {"n": 0})

    async def increment(store: EtcdStore, times: int) -> int:
        conflicts = 0
        for _ in range(times):
            while True:
                entry = await store.get(Kind.EVENT_TYPES, "default", "counter")
                try:
                    await store.update(Kind.EVENT_TYPES, "default", "counter", {"n": entry.value["n"] + 1},
                                       expected_revision=entry.revision)
                    break
                except RevisionConflict:
                    conflicts += 1
        return conflicts

    await asyncio.gather(increment(a, 25), increment(b, 25))
    assert (await a.get(Kind.EVENT_TYPES, "default", "counter")).value == {"n": 50}


async def test_snapshot_then_watch_sees_exactly_the_later_changes(shared_etcd, store_factory, unique_prefix):
    writer = await store_factory(shared_etcd.endpoint, unique_prefix)
    reader = await store_factory(shared_etcd.endpoint, unique_prefix)
    await writer.create(Kind.FUNCTIONS, "default", "before", {"v": 0})
    snapshot = await reader.snapshot()
    assert [(e.kind, e.id, e.value) for e in snapshot.entries] == [(Kind.FUNCTIONS, "before", {"v": 0})]

    e1 = await writer.create(Kind.EVENT_TYPES, "s1", "user.created", {"name": "user.created"})
    e2 = await writer.update(Kind.FUNCTIONS, "default", "before", {"v": 1})
    await writer.delete(Kind.FUNCTIONS, "default", "before")
    e4 = await writer.create(Kind.PLUGINS, "", "guard", {"sha256": "ab"})

    watch = reader.watch(snapshot.revision)
    changes = await next_changes(watch, 4)
    await watch.aclose()
    assert [(c.kind, c.space, c.id, c.value) for c in changes] == [
        (Kind.EVENT_TYPES, "s1", "user.created", {"name": "user.created"}),
        (Kind.FUNCTIONS, "default", "before", {"v": 1}),
        (Kind.FUNCTIONS, "default", "before", None),
        (Kind.PLUGINS, "", "guard", {"sha256": "ab"}),
    ]
    assert changes[0].revision == e1.revision and changes[1].revision == e2.revision
    assert changes[3].revision == e4.revision
    assert [c.revision for c in changes] == sorted({c.revision for c in changes})

    # Writes outside the prefix (another deployment sharing the cluster) are not seen.
    shared_etcd.etcdctl("put", "/unrelated/key", "x")
    other = await store_factory(shared_etcd.endpoint, unique_prefix.rstrip("/") + "-elsewhere/")
    await other.create(Kind.CORS, "default", "x", {})
    assert [e.id for e in (await reader.snapshot()).entries] == ["user.created", "guard"]


async def test_watch_from_a_compacted_revision_resets(etcd_factory, store_factory):
    etcd = etcd_factory()
    store = await store_factory(etcd.endpoint)
    first = await store.create(Kind.FUNCTIONS, "default", "f", {"v": 0})
    await store.update(Kind.FUNCTIONS, "default", "f", {"v": 1})
    etcd.compact()
    with pytest.raises(WatchReset, match="compacted"):
        await asyncio.wait_for(anext(store.watch(first.revision - 1)), 10)


async def test_unreachable_etcd_fails_fast_with_a_clear_message_and_the_watch_resumes(etcd_factory, store_factory):
    etcd = etcd_factory()
    store = await store_factory(etcd.endpoint)
    snapshot = await store.snapshot()
    watch = store.watch(snapshot.revision)
    await store.create(Kind.FUNCTIONS, "default", "a", {})
    assert [c.id for c in await next_changes(watch, 1)] == ["a"]
    assert store.available

    etcd.stop()
    pending = asyncio.ensure_future(anext(watch))
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match=rf"etcd at {etcd.endpoint} did not answer"):
        await store.create(Kind.FUNCTIONS, "default", "b", {})
    assert time.monotonic() - started < 5, "an unreachable etcd must answer 503 promptly, not hang"
    with pytest.raises(StoreUnavailable):
        await store.list(Kind.FUNCTIONS)
    assert not store.available

    await asyncio.to_thread(etcd.start)
    # Written by another client while this store's watch is still reconnecting.
    etcd.etcdctl("del", "/eventgateway/v1/functions/default/a")
    change = await asyncio.wait_for(pending, 15)
    assert (change.id, change.value) == ("a", None)
    await store.create(Kind.FUNCTIONS, "default", "c", {"v": 3})
    assert [(c.id, c.value) for c in await next_changes(watch, 1)] == [("c", {"v": 3})]
    assert store.available
    await watch.aclose()


async def test_compaction_during_a_partition_resets_the_running_watch(etcd_factory, store_factory):
    etcd = etcd_factory()
    cutter = TcpCutter(etcd.client_port)
    await cutter.heal()
    direct = await store_factory(etcd.endpoint)
    cut_off = await store_factory(cutter.endpoint)
    watch = cut_off.watch((await cut_off.snapshot()).revision)
    await direct.create(Kind.FUNCTIONS, "default", "doomed", {})
    assert [c.id for c in await next_changes(watch, 1)] == ["doomed"]

    await cutter.cut()
    await direct.delete(Kind.FUNCTIONS, "default", "doomed")
    await direct.create(Kind.FUNCTIONS, "default", "new", {})
    await asyncio.to_thread(etcd.compact)
    await asyncio.sleep(0.3)
    await cutter.heal()
    with pytest.raises(WatchReset):
        await asyncio.wait_for(anext(watch), 15)
    fresh = await cut_off.snapshot()
    assert [e.id for e in fresh.entries] == ["new"]
    await cutter.cut()


async def test_tls_with_client_certificates(etcd_factory, store_factory):
    etcd = etcd_factory(tls=True)
    tls = etcd.tls
    store = await store_factory(etcd.endpoint, ca_file=str(tls.ca), cert_file=str(tls.cert("client")),
                                key_file=str(tls.key("client")))
    await store.create(Kind.CORS, "default", "c", {"origins": ["*"]})
    assert (await store.get(Kind.CORS, "default", "c")).value == {"origins": ["*"]}
    # Without the client certificate the TLS handshake is refused: unavailable, not a silent success.
    with pytest.raises(StoreUnavailable):
        await store_factory(etcd.endpoint, ca_file=str(tls.ca))


async def test_user_and_password_auth(etcd_factory, store_factory):
    etcd = etcd_factory()
    etcd.enable_gateway_auth()
    store = await store_factory(etcd.endpoint, user="gw", password="gwpw")
    await store.create(Kind.EVENT_TYPES, "default", "e", {})
    watch = store.watch(0)
    assert (await next_changes(watch, 1))[0].id == "e"
    await watch.aclose()
    with pytest.raises(StoreError, match="refused user 'gw'"):
        await store_factory(etcd.endpoint, user="gw", password="wrong")
    anonymous = EtcdStore(parse_etcd_url(f"etcd://{etcd.endpoint}"))
    with pytest.raises(StoreError, match="rejected the request"):
        await anonymous.open()
    await anonymous.close()


def test_url_parsing_names_what_is_wrong(tmp_path):
    options = parse_etcd_url("etcd://10.0.0.1:2379,etcd-2:2380/custom/prefix")
    assert options.endpoints == (("10.0.0.1", 2379), ("etcd-2", 2380))
    assert options.prefix == "/custom/prefix/"
    assert parse_etcd_url("etcd://h").endpoints == (("h", 2379),)
    with pytest.raises(ValueError, match="an etcd URL starts with etcd://"):
        parse_etcd_url("http://h:1")
    with pytest.raises(ValueError, match="bad endpoint 'h:99999'"):
        parse_etcd_url("etcd://h:99999")
    with pytest.raises(ValueError, match="--db-ca '/nonexistent' is not a readable file"):
        parse_etcd_url("etcd://h:1", ca_file="/nonexistent")
    with pytest.raises(ValueError, match="--db-user needs --db-password"):
        parse_etcd_url("etcd://h:1", user="u")
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    with pytest.raises(ValueError, match="--db-cert and --db-key go together"):
        parse_etcd_url("etcd://h:1", cert_file=str(cert))


async def test_several_endpoints_fall_over_to_one_that_answers(etcd_factory, store_factory):
    """A dead first endpoint neither stops start-up nor reads; writes and the watch move on to the next."""
    from .etcd_server import free_port

    etcd = etcd_factory()
    dead = f"127.0.0.1:{free_port()}"
    store = await store_factory(f"{dead},{etcd.endpoint}")
    assert await store.list(Kind.FUNCTIONS) == []
    await store.create(Kind.FUNCTIONS, "default", "f", {"v": 1})
    watch = store.watch((await store.snapshot()).revision)
    await store.update(Kind.FUNCTIONS, "default", "f", {"v": 2})
    assert [(c.id, c.value) for c in await next_changes(watch, 1)] == [("f", {"v": 2})]
    await watch.aclose()


def test_reconnect_backoff_doubles_with_jitter_up_to_its_cap_and_resets():
    """The watch's reconnect delays: 50 ms doubling to 2 s, each drawn from [ceiling/2, ceiling] so that a
    fleet that lost etcd together does not come back in step; a stream that worked starts over."""
    from gateway.store.etcd import _Backoff

    backoff = _Backoff()
    ceilings = [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0]
    delays = [backoff.next_delay() for _ in ceilings]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling, (delay, ceiling)
    assert len({round(d, 9) for d in (_Backoff().next_delay() for _ in range(20))}) > 1  # jittered
    backoff.reset()
    assert backoff.next_delay() <= 0.05


async def test_config_update_derived_from_a_stale_read_is_refused_not_lost(shared_etcd, store_factory, unique_prefix):
    """A PUT that keeps a stored secret ("*****") is a read-modify-write. If another gateway changes the
    function between that read and the write, the write must be refused (409), not silently put the old
    secret back. The other gateway's write is made, through its own etcd connection, exactly in that window."""
    from gateway.config.service import ConfigConflict, ConfigService
    from gateway.config.view import ConfigView

    class InterleavedStore(EtcdStore):
        """A real EtcdStore; once armed, another writer's update lands right after this store's next read."""

        other_write = None

        async def get(self, kind, space, id):
            entry = await super().get(kind, space, id)
            if self.other_write is not None:
                write, self.other_write = self.other_write, None
                await write()
            return entry

    store = InterleavedStore(parse_etcd_url(f"etcd://{shared_etcd.endpoint}{unique_prefix}"))
    await store.open()
    other = await store_factory(shared_etcd.endpoint, unique_prefix)
    view = ConfigView(store)
    await view.start()
    try:
        service = ConfigService(store, view)

        def function(secret: str, region: str = "us-east-1") -> dict:
            return {"functionId": "lambda", "type": "awslambda", "provider": {
                "arn": "arn:aws:lambda:us-east-1:1:function:f", "region": region,
                "awsAccessKeyId": "AKIA", "awsSecretAccessKey": secret}}

        await service.create_function("default", function("old-secret"))
        rotated = {**function("rotated-secret"), "space": "default"}

        async def rotate() -> None:  # the other gateway rotates the secret
            current = await other.get(Kind.FUNCTIONS, "default", "lambda")
            rotated["provider"] = {**current.value["provider"], "awsSecretAccessKey": "rotated-secret"}
            await other.update(Kind.FUNCTIONS, "default", "lambda", {**current.value, "provider": rotated["provider"]},
                               expected_revision=current.revision)

        store.other_write = rotate
        with pytest.raises(ConfigConflict, match="changed by another request"):
            await service.update_function("default", "lambda", function("*****", region="eu-west-1"))
        stored = await other.get(Kind.FUNCTIONS, "default", "lambda")
        assert stored.value["provider"]["awsSecretAccessKey"] == "rotated-secret"
        assert stored.value["provider"]["region"] == "us-east-1"
        # Read again and retried, the same PUT applies and keeps the rotated secret.
        updated = await service.update_function("default", "lambda", function("*****", region="eu-west-1"))
        assert updated.provider.aws_secret_access_key == "rotated-secret"
        assert updated.provider.region == "eu-west-1"
    finally:
        await view.close()
        await store.close()


async def test_a_refused_watch_says_why_once(etcd_factory, store_factory, caplog):
    """A watch etcd refuses (here: the gateway's role lost its permission on the prefix) is not a lost
    connection: the log says why, once, and the store reports itself unavailable while it retries."""
    import logging

    etcd = etcd_factory()
    etcd.enable_gateway_auth()
    store = await store_factory(etcd.endpoint, user="gw", password="gwpw")
    revision = (await store.snapshot()).revision
    etcd.etcdctl("--user", "root:rootpw", "role", "revoke-permission", "gateway", "--prefix=true", "/eventgateway/v1/")
    caplog.set_level(logging.WARNING, logger="gateway.store.etcd")
    watch = store.watch(revision)
    pending = asyncio.ensure_future(anext(watch))
    try:
        for _ in range(200):
            refusals = [r.getMessage() for r in caplog.records if "etcd watch on /eventgateway/v1/ refused" in r.getMessage()]
            if refusals and not store.available:
                break
            await asyncio.sleep(0.05)
        assert refusals and "permission denied" in refusals[0], refusals
        await asyncio.sleep(0.5)  # several retries later, still one line
        assert len([r for r in caplog.records if "refused" in r.getMessage()]) == 1
        assert not store.available
    finally:
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)
        await watch.aclose()
