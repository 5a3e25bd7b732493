"""The http provider against a real HTTP server: configurable timeout, any non-2xx is a failure."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypercorn.asyncio import serve
from hypercorn.config import Config
from quart import Quart, Response, request

from gateway.providers import ProviderError, ProviderPool

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
async def target() -> AsyncIterator[str]:
    app = Quart("target")

    @app.post("/status/<int:code>")
    async def status(code: int) -> Response:
        return Response(await request.get_data(), status=code, content_type=request.content_type or "")

    @app.post("/slow")
    async def slow() -> Response:
        await asyncio.sleep(1.0)
        return Response("late")

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    config = Config()
    config.bind = [f"fd://{sock.fileno()}"]
    config.accesslog = config.errorlog = None
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))
    await asyncio.sleep(0.2)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    await task
    with contextlib.suppress(OSError):
        sock.close()


async def test_success_returns_the_body_and_sends_a_cloudevent_content_type(target: str) -> None:
    pool = ProviderPool()
    try:
        provider = pool.get("http", {"url": f"{target}/status/201"})
        assert await provider.call(b'{"a":1}') == b'{"a":1}'
    finally:
        await pool.close()


@pytest.mark.parametrize("code", [400, 404, 500, 503])
async def test_any_non_2xx_is_a_failure_naming_the_status(target: str, code: int) -> None:
    pool = ProviderPool()
    try:
        with pytest.raises(ProviderError, match=f"answered {code}: boom"):
            await pool.get("http", {"url": f"{target}/status/{code}"}).call(b"boom")
    finally:
        await pool.close()


async def test_timeout_is_the_function_setting(target: str) -> None:
    pool = ProviderPool()
    try:
        with pytest.raises(ProviderError, match="timed out after 0.2s"):
            await pool.get("http", {"url": f"{target}/slow", "timeout": 0.2}).call(b"{}")
        assert await pool.get("http", {"url": f"{target}/slow", "timeout": 3}).call(b"{}") == b"late"
    finally:
        await pool.close()


async def test_unreachable_and_bad_config(target: str) -> None:
    pool = ProviderPool()
    try:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            closed_port = sock.getsockname()[1]
        with pytest.raises(ProviderError, match=f"failed: ClientConnectorError: Cannot connect to host 127.0.0.1:{closed_port}"):
            await pool.get("http", {"url": f"http://127.0.0.1:{closed_port}/"}).call(b"{}")
        with pytest.raises(ProviderError, match="'timeout' must be a positive number"):
            pool.get("http", {"url": target, "timeout": 0})
        with pytest.raises(ProviderError, match="'url' must be an http"):
            pool.get("http", {"url": "ftp://x"})
    finally:
        await pool.close()


async def test_errors_never_show_the_url_password() -> None:
    from gateway.providers import ProviderError
    from gateway.providers.http import HTTPProvider, HTTPSession

    session = HTTPSession(4)
    provider = HTTPProvider({"url": "http://user:topsecret@127.0.0.1:9/fn", "timeout": 2}, session)
    try:
        with pytest.raises(ProviderError) as raised:
            await provider.call(b"{}")
    finally:
        await session.close()
    assert "topsecret" not in str(raised.value) and "http://user:*****@127.0.0.1:9/fn" in str(raised.value)


async def test_providers_are_cached_per_function_document_and_forgotten_with_it(target: str) -> None:
    import gc

    from gateway.config.models import Function

    def document(url: str) -> Function:
        return Function.model_validate({"functionId": "fn", "type": "http", "provider": {"url": url}})

    pool = ProviderPool()
    try:
        first = document(f"{target}/status/200")
        provider = pool.for_function(first)
        assert pool.for_function(first) is provider
        assert await provider.call(b"same") == b"same"
        # An equal document (another object) shares the provider through the configuration key.
        assert pool.for_function(document(f"{target}/status/200")) is provider
        changed = document(f"{target}/status/201")
        assert pool.for_function(changed) is not provider
        assert pool.for_function(changed).url.endswith("/status/201")
        del first, changed
        gc.collect()
        assert pool._by_function == {}  # collected documents leave no entry behind
    finally:
        await pool.close()


async def test_a_pooled_connection_the_function_closed_is_retried_once_on_a_new_one() -> None:
    """A function server that answers one request per connection and then drops the connection when the
    next request arrives on it (what a server closing an idle keep-alive connection looks like when its FIN
    races the reuse): the second call still succeeds, on a new connection; each request reached the server
    once. A server that drops every request is still a failure (one retry, not a loop)."""
    from gateway.providers.http import HTTPProvider, HTTPSession

    answered: list[int] = []
    drop_everything = False

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served = False
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                if served or drop_everything:
                    writer.transport.abort()  # a connection closed under the client: reset, no answer
                    return
                served = True
                answered.append(1)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    session = HTTPSession(4)
    provider = HTTPProvider({"url": f"http://127.0.0.1:{port}/fn", "timeout": 5}, session)
    try:
        assert await provider.call(b"{}") == b"ok"
        assert await provider.call(b"{}") == b"ok"  # the pooled connection was dropped: retried, answered
        assert len(answered) == 2
        drop_everything = True
        with pytest.raises(ProviderError):
            await provider.call(b"{}")
    finally:
        await session.close()
        server.close()
        await server.wait_closed()


async def test_a_connection_that_dies_after_the_answer_began_is_not_retried() -> None:
    """The function answered a status line and part of its body, then the connection was reset: the request
    reached the function, so sending it again could run it twice. One request, one failure naming the error;
    a connection dropped before any answer is retried once (two requests, then the failure)."""
    from gateway.providers.http import HTTPProvider, HTTPSession

    requests: list[int] = []
    answer_first = True

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            await reader.readexactly(length)
            requests.append(1)
            if answer_first:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
                await writer.drain()
                await asyncio.sleep(0.05)
            writer.transport.abort()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    session = HTTPSession(4)
    provider = HTTPProvider({"url": f"http://127.0.0.1:{port}/fn", "timeout": 5}, session)
    try:
        with pytest.raises(ProviderError, match=r"^HTTP call to http://127\.0\.0\.1:\d+/fn failed: "
                                                r"ClientPayloadError: Response payload is not completed"):
            await provider.call(b"{}")
        assert len(requests) == 1  # an answer had begun: not sent again
        answer_first = False
        with pytest.raises(ProviderError, match=r"^HTTP call to http://127\.0\.0\.1:\d+/fn failed: "
                                                r"(ServerDisconnectedError|ClientOSError): "):
            await provider.call(b"{}")
        assert len(requests) == 3  # dropped before any answer: retried once, then the failure
    finally:
        await session.close()
        server.close()
        await server.wait_closed()


_NAMESPACE_SCRIPT = """set -e
ip link set lo up
printf 'nameserver 127.0.0.1\\noptions timeout:30 attempts:1\\n' > "$1"
mount --bind "$1" /etc/resolv.conf
shift
exec "$@"
"""


def _in_namespace_with_silent_dns(tmp_path: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """``command`` run in a new user + network + mount namespace whose only name server (127.0.0.1:53,
    served by the command itself) never answers."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare(1) and ip(8) for a private network namespace")
    probe = subprocess.run(["unshare", "-r", "-n", "-m", "true"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"user namespaces unavailable here: {probe.stderr.strip()}")
    return subprocess.run(
        ["unshare", "-r", "-n", "-m", "sh", "-c", _NAMESPACE_SCRIPT, "sh", str(tmp_path / "resolv.conf"), *command],
        capture_output=True, text=True, timeout=60, cwd=REPO)  # 60 s: a hang guard, the call's timeout is 0.5 s


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_host_name_that_never_resolves_is_bounded_by_the_function_timeout(tmp_path: Path, loop: str) -> None:
    """A function whose host name's DNS query is never answered: the gateway's real resolver (c-ares over
    UDP; resolv.conf tells glibc to wait 30 s) asks a name server that reads the query and stays silent. The
    call fails as a timeout after the function's 0.5 s, and the event loop kept running meanwhile."""
    done = _in_namespace_with_silent_dns(
        tmp_path, sys.executable, "-m", "tests.gateway.providers.hanging_dns_child", "0.5", loop)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["queries_for_host"] >= 1, result  # the resolution really went to the silent server
    assert result["error"] == "HTTP call to http://fn.hanging-dns.test:8080/fn timed out after 0.5s", result
    assert result["seconds"] < 10, result  # hang guard (20x the timeout): glibc would wait 30 s, c-ares ~3 s
    assert result["loop_ticks"] > 0, result  # the loop was not blocked while the name hung


def _dns_child(tmp_path: Path, mode: str, loop: str, resolver: str) -> dict[str, Any]:
    """`dns_exhaustion_child` run in the namespace with the DNS server it serves: its JSON result."""
    done = _in_namespace_with_silent_dns(
        tmp_path, sys.executable, "-m", "tests.gateway.providers.dns_exhaustion_child", mode, loop, resolver)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.slow  # ~3 s: the hanging calls run to their 2 s timeout
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_names_that_never_resolve_do_not_stall_a_function_addressed_by_host_name(tmp_path: Path, loop: str) -> None:
    """16 concurrent calls to functions whose (distinct) host names are never answered by the name server,
    then a call to a healthy function at http://localhost:PORT: it answers while all 16 are still pending
    (lookups are c-ares queries on the loop, not executor threads they could all hold), ``localhost`` comes
    from /etc/hosts (no query for it), and the hanging calls still fail at their own 2 s timeout."""
    result = _dns_child(tmp_path, "exhaust", loop, "gateway")
    assert result["healthy_answer"] == "healthy", result
    assert result["hanging_pending_when_healthy_answered"] == 16, result
    assert result["queries_for_hanging_names"] >= 16, result  # every hanging name really asked the silent server
    assert result["queries_for_localhost"] == 0, result
    assert result["hanging_errors"] == [
        f"HTTP call to http://fn{n}.hanging-dns.test:8080/fn timed out after 2s" for n in range(16)], result
    assert result["hanging_seconds_max"] < 10, result  # hang guard


@pytest.mark.slow  # ~6 s: the healthy call runs to its 5 s timeout
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_the_threaded_resolver_the_gateway_used_before_stalls_the_healthy_function(tmp_path: Path, loop: str) -> None:
    """The same scene with aiohttp's `ThreadedResolver` (glibc ``getaddrinfo`` on the loop's executor: 6
    threads on 2 cores; uvloop: libuv's 4): the hanging names hold every thread and the healthy function's
    call times out behind them. This is what the test above would see if the gateway went back to it."""
    result = _dns_child(tmp_path, "exhaust", loop, "threaded")
    assert result["healthy_answer"] is None, result
    assert result["healthy_error"].endswith("/fn timed out after 5s"), result
    assert result["hanging_pending_when_healthy_answered"] == 0, result


@pytest.mark.slow  # ~3 s: one lookup (a failed lookup is not retried)
def test_a_lookup_is_bounded_by_the_resolver_not_by_resolv_conf(tmp_path: Path) -> None:
    """resolv.conf says ``options timeout:30 attempts:1``; the gateway's c-ares options (1 s, 2 tries, doubling)
    end a lookup that is never answered after ~3 s, before a 20 s function timeout, with a clear error."""
    result = _dns_child(tmp_path, "bound", "asyncio", "gateway")
    assert result["error"] == ("HTTP call to http://fn.hanging-dns.test:8080/fn failed: ClientConnectorDNSError: "
                               "Cannot connect to host fn.hanging-dns.test:8080 ssl:default "
                               "[Timeout while contacting DNS servers]"), result
    assert result["seconds"] < 15, result  # hang guard: below both resolv.conf's 30 s and the call's 20 s
    assert 1 <= result["queries_for_hanging_names"] <= 4, result  # one lookup: 2 tries (A and AAAA at most), no second


def test_a_name_that_does_not_exist_fails_with_the_same_words_as_before(tmp_path: Path) -> None:
    """NXDOMAIN from the name server: the error reads as it did with glibc's resolver (compared in the same
    namespace), naming the host, the port and glibc's reason."""
    expected = ("HTTP call to http://fn.nxdomain.test:8080/fn failed: ClientConnectorDNSError: "
                "Cannot connect to host fn.nxdomain.test:8080 ssl:default [Name or service not known]")
    assert _dns_child(tmp_path, "nxdomain", "asyncio", "gateway")["error"] == expected
    assert _dns_child(tmp_path, "nxdomain", "uvloop", "gateway")["error"] == expected
    assert _dns_child(tmp_path, "nxdomain", "asyncio", "threaded")["error"] == expected


def _os_threads() -> set[str]:
    return set(os.listdir("/proc/self/task"))


async def test_localhost_resolves_and_the_resolver_closes_with_the_session(target: str) -> None:
    """A function at http://localhost:PORT is reached (c-ares reads /etc/hosts); the c-ares channel (one
    event thread of its own) lives while the session does and is closed with it."""
    from gateway.providers.http import HTTPProvider, HTTPSession

    before = _os_threads()
    session = HTTPSession(4)
    provider = HTTPProvider({"url": target.replace("127.0.0.1", "localhost") + "/status/200"}, session)
    try:
        assert await provider.call(b"local") == b"local"
        started = _os_threads() - before  # c-ares's event thread (and pycares's process-wide reaper, once)
        assert started, "the resolver runs its own event thread"
    finally:
        await session.close()
    for _ in range(100):  # hang guard: 10 s
        if not started <= _os_threads():
            break
        await asyncio.sleep(0.1)
    assert not started <= _os_threads(), "the resolver's event thread outlived the session"


def test_the_gateway_does_not_start_without_aiodns() -> None:
    """aiodns is a dependency: without it importing the providers fails, no silent threaded fallback."""
    done = subprocess.run(
        [sys.executable, "-c", "import sys; sys.modules['aiodns'] = None; import gateway.providers"],
        capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode != 0
    assert "No module named 'aiodns'" in done.stderr or "import of aiodns halted" in done.stderr, done.stderr
