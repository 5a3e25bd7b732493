"""The bind rule and token matching of gateway.http.auth (the HTTP refusals are tested through the real
server in test_plugins_server.py)."""

from __future__ import annotations

import logging

import pytest

from gateway.http.auth import config_bind_host, token_matches


def test_config_bind_host_rule(caplog: pytest.LogCaptureFixture) -> None:
    assert config_bind_host(None, None) == "127.0.0.1"
    assert config_bind_host(None, "secret") == "127.0.0.1"  # a token alone does not expose the open reads
    assert config_bind_host("10.1.2.3", "secret") == "10.1.2.3"
    with caplog.at_level(logging.WARNING, logger="gateway.auth"):
        assert config_bind_host("::1", None) == "::1"
        assert not caplog.records  # loopback: nothing to warn about
        assert config_bind_host("0.0.0.0", None) == "0.0.0.0"
    assert "without --config-token" in caplog.records[0].getMessage()


@pytest.mark.parametrize(("header", "ok"), [
    ("Bearer secret", True), ("bearer secret", True), ("Bearer  secret ", True),
    ("Bearer secre", False), ("Bearer secret2", False), ("Basic secret", False), ("secret", False),
    ("", False), (None, False),
])
def test_token_matches(header: str | None, ok: bool) -> None:
    assert token_matches(header, "secret") is ok
