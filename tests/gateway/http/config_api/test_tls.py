"""Both APIs over HTTPS with the TLS flags, and what a bad certificate does at start-up."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.settings import Settings, SettingsError
from gateway.server import check_tls
from tests.gateway.http.config_api.conftest import http_function
from tests.gateway_fixtures import REPO_ROOT


def trusting(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def test_both_apis_speak_https_with_their_own_certificates(gateway_server, function_server,
                                                                 tmp_path: Path) -> None:
    events_cert, events_key = self_signed(tmp_path, "events")
    config_cert, config_key = self_signed(tmp_path, "config")
    gw = await gateway_server(events_tls_cert=str(events_cert), events_tls_key=str(events_key),
                              config_tls_cert=str(config_cert), config_tls_key=str(config_key))
    assert gw.events_url.startswith("https://") and gw.config_url.startswith("https://")
    function_server.respond(200, {"statusCode": 200, "body": "over tls"})
    async with httpx.AsyncClient(base_url=gw.config_url + "/v1/spaces/default", verify=trusting(config_cert)) as api:
        for url, body in (("/functions", http_function("f", url=function_server.url)),
                          ("/eventtypes", {"name": "http.request"}),
                          ("/subscriptions", {"type": "sync", "eventType": "http.request", "functionId": "f",
                                              "path": "/secure", "method": "GET"})):
            assert (await api.post(url, json=body)).status_code == 201
    async with httpx.AsyncClient(base_url=gw.events_url, verify=trusting(events_cert)) as events:
        answer = await events.get("/secure")
    assert (answer.status_code, answer.text) == (200, "over tls")
    # Each API presents its own certificate: the other one's does not verify it.
    async with httpx.AsyncClient(verify=trusting(config_cert)) as wrong:
        with pytest.raises(httpx.ConnectError):
            await wrong.get(gw.events_url + "/secure")
    # Plain HTTP to a TLS port gets no HTTP answer.
    async with httpx.AsyncClient() as plain:
        with pytest.raises(httpx.HTTPError):
            await plain.get(gw.config_url.replace("https://", "http://") + "/v1/status")


def test_unloadable_certificate_is_named(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path, "a")
    _, other_key = self_signed(tmp_path, "b")
    with pytest.raises(SettingsError, match="--events-tls-cert .* cannot load the certificate and key: No such file"):
        check_tls(Settings(events_tls_cert=str(tmp_path / "missing.crt"), events_tls_key=str(tmp_path / "k")))
    with pytest.raises(SettingsError, match="--config-tls-cert .*matching PEM private key"):
        check_tls(Settings(config_tls_cert=str(cert), config_tls_key=str(other_key)))


def test_serve_with_a_bad_certificate_exits_non_zero_naming_the_flag(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    failed = subprocess.run([sys.executable, "-m", "gateway", "serve", "--db", "memory", "--events-port", "0",
                             "--config-port", "0", "--events-tls-cert", str(garbage), "--events-tls-key",
                             str(garbage)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert failed.returncode == 2, failed.stderr
    assert f"--events-tls-cert {garbage}" in failed.stderr and "listening" not in failed.stderr
