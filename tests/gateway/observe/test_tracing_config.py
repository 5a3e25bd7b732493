"""When tracing is on, and how it is set up: `--otel-endpoint` and the standard OTEL_* variables."""

from __future__ import annotations

import pytest

from gateway.observe.tracing import TracingConfigError, configure_tracing, traces_url
from gateway.settings import SettingsError, parse_serve_args


def _service(tracing) -> str:
    return tracing.provider.resource.attributes["service.name"]


@pytest.mark.parametrize("environ", [
    {}, {"OTEL_SERVICE_NAME": "x"}, {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"},
    {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}])
def test_off_unless_configured(environ) -> None:
    assert configure_tracing(None, environ) is None


def test_the_flag_turns_it_on_and_wins_over_none() -> None:
    tracing = configure_tracing("http://collector:4318", {"OTEL_TRACES_EXPORTER": "none"})
    assert tracing is not None
    try:
        assert tracing.description == "OTLP/HTTP to http://collector:4318/v1/traces"
        assert _service(tracing) == "event-gateway"
    finally:
        tracing.shutdown()


def test_the_variables_turn_it_on_and_name_the_service() -> None:
    tracing = configure_tracing(None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SERVICE_NAME": "edge"})
    assert tracing is not None
    try:
        assert tracing.description == "OTLP/HTTP to http://c:4318/v1/traces" and _service(tracing) == "edge"
    finally:
        tracing.shutdown()
    tracing = configure_tracing(None, {"OTEL_TRACES_EXPORTER": "console",
                                       "OTEL_RESOURCE_ATTRIBUTES": "service.name=other,team=a"})
    assert tracing is not None
    try:
        assert tracing.description == "the console" and _service(tracing) == "other"
    finally:
        tracing.shutdown()


def test_a_password_in_the_endpoint_is_not_shown() -> None:
    tracing = configure_tracing("https://user:hunter2@collector", {})
    assert tracing is not None
    try:
        assert "hunter2" not in tracing.description
    finally:
        tracing.shutdown()


@pytest.mark.parametrize("environ, words", [
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "http/protobuf"),
    ({"OTEL_TRACES_EXPORTER": "zipkin"}, "zipkin")])
def test_what_it_cannot_do_is_an_error_naming_it(environ, words) -> None:
    with pytest.raises(TracingConfigError, match=words):
        configure_tracing(None, environ)


def test_traces_url() -> None:
    assert traces_url("http://c:4318") == "http://c:4318/v1/traces"
    assert traces_url("http://c:4318/") == "http://c:4318/v1/traces"
    assert traces_url("http://c/otlp/v1/traces") == "http://c/otlp/v1/traces"


def test_otel_endpoint_flag_and_variable() -> None:
    assert parse_serve_args(["--otel-endpoint", "http://c:4318"], {}).otel_endpoint == "http://c:4318"
    assert parse_serve_args([], {"EVENT_GATEWAY_OTEL_ENDPOINT": "http://v:4318"}).otel_endpoint == "http://v:4318"
    assert parse_serve_args([], {}).otel_endpoint is None
    with pytest.raises(SettingsError, match="--otel-endpoint 'c:4318'"):
        parse_serve_args(["--otel-endpoint", "c:4318"], {})
