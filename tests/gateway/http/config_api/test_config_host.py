"""Where the Config API listens (issue 10): a config token alone does not move it off loopback, since its
reads stay open; only ``--config-host`` exposes it. Real ``python -m gateway serve`` processes."""

from __future__ import annotations

import socket
import subprocess
from urllib.parse import urlsplit

import httpx


def _non_loopback_address() -> str | None:
    """An address of this machine that is not loopback (the route to a public address), if any."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is sent for a UDP connect
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def _listening_sockets() -> str:
    return subprocess.run(["ss", "-ltnp"], capture_output=True, text=True, check=False).stdout


def test_config_token_alone_keeps_the_config_api_on_loopback(gateway_process) -> None:
    gw = gateway_process("--db", "memory", "--config-token", "s3cret")
    config = urlsplit(gw.config_url)
    assert config.hostname == "127.0.0.1", gw.config_url
    # Reads stay open on loopback; writes need the token.
    with httpx.Client(base_url=gw.config_url, timeout=5) as client:
        assert client.get("/v1/plugins").status_code == 200
        assert client.post("/v1/spaces/default/eventtypes", json={"name": "a.b"}).status_code == 401
    # Not reachable on another interface of this machine.
    other = _non_loopback_address()
    if other is not None:
        try:
            with socket.create_connection((other, config.port), timeout=2):
                reached = True
        except OSError:
            reached = False
        assert not reached, f"Config API reachable on {other}:{config.port} with only --config-token"
    listing = _listening_sockets()
    if listing:
        assert f"0.0.0.0:{config.port}" not in listing and f"*:{config.port}" not in listing
    assert gw.stop() == 0


def test_config_host_exposes_it_explicitly(gateway_process) -> None:
    gw = gateway_process("--db", "memory", "--config-token", "s3cret", "--config-host", "0.0.0.0")
    assert urlsplit(gw.config_url).hostname == "0.0.0.0", gw.config_url
    assert gw.stop() == 0
