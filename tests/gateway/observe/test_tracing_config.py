"""When tracing is on, and how it is set up: `--otel-endpoint` and the standard OTEL_* variables."""

from __future__ import annotations

import re

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


@pytest.mark.parametrize("sampler, arg, root_sampled", [
    ("always_on", "", True), ("parentbased_always_on", "", True), ("always_off", "", False),
    ("parentbased_traceidratio", "0", False), ("traceidratio", "1", True)])
def test_the_sampler_decides_at_the_root_and_children_follow(monkeypatch, sampler, arg, root_sampled) -> None:
    from opentelemetry import trace as api

    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off" if root_sampled else "always_on")  # not what is read
    tracing = configure_tracing("http://127.0.0.1:9", {"OTEL_BSP_SCHEDULE_DELAY": "600000", "OTEL_BSP_EXPORT_TIMEOUT": "100",
                                                      "OTEL_TRACES_SAMPLER": sampler, "OTEL_TRACES_SAMPLER_ARG": arg})
    assert tracing is not None
    try:
        recorder = tracing.recorder
        root = recorder.start_span("root")
        child = recorder.start_span("child", root.get_span_context())
        assert (root.is_recording(), child.is_recording()) == (root_sampled, root_sampled)
        assert child.trace_id == root.trace_id and child.parent_span_id == root.span_id
        assert bool(child.trace_flags & 1) == root_sampled
        child.end()
        root.end()
        assert len(tracing.queues[0][1]) == (2 if root_sampled else 0)
        assert not root.is_recording()  # ended: records nothing more
        # A caller's unsampled parent is followed by the parent-based samplers.
        remote = api.SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=api.TraceFlags(0))
        continued = recorder.start_span("continued", remote)
        assert continued.parent_remote is True and continued.trace_id == 0xABC
        assert continued.is_recording() == (sampler in ("always_on", "traceidratio"))
        # Where the recorder knows the answer without asking the sampler, it is the sampler's answer.
        sampled_remote = api.SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=api.TraceFlags(1))
        assert recorder.decision(None) in (None, root_sampled)
        assert recorder.decision(remote) in (None, continued.is_recording())
        assert recorder.decision(sampled_remote) in (None, recorder.start_span("s", sampled_remote).is_recording())
        assert (recorder.decision(None), recorder.decision(remote)) != (None, None) or "ratio" in sampler
    finally:
        tracing.shutdown()


@pytest.mark.parametrize("sampler, arg, words", [
    ("alwayson", "", "OTEL_TRACES_SAMPLER='alwayson': expected one of always_on, always_off"),
    ("jaeger_remote", "", "OTEL_TRACES_SAMPLER='jaeger_remote'"),
    ("traceidratio", "lots", "OTEL_TRACES_SAMPLER_ARG='lots': traceidratio takes the share"),
    ("parentbased_traceidratio", "1.5", "OTEL_TRACES_SAMPLER_ARG='1.5'"),
    ("traceidratio", "-0.1", "OTEL_TRACES_SAMPLER_ARG='-0.1'"),
    ("traceidratio", "nan", "OTEL_TRACES_SAMPLER_ARG='nan'")])
def test_a_sampler_or_ratio_it_does_not_know_is_an_error_naming_it(sampler, arg, words) -> None:
    """The SDK falls back to its default (sampling everything) with a warning; the gateway refuses to start."""
    with pytest.raises(TracingConfigError, match=re.escape(words)):
        configure_tracing("http://c:4318", {"OTEL_TRACES_SAMPLER": sampler, "OTEL_TRACES_SAMPLER_ARG": arg})


@pytest.mark.parametrize("sampler, arg, expected", [
    ("", "", "ParentBased{root:AlwaysOnSampler"), ("ALWAYS_OFF", "", "AlwaysOffSampler"),
    ("traceidratio", "", "TraceIdRatioBased{1.0}"), ("parentbased_traceidratio", " 0.25 ", "TraceIdRatioBased{0.25}")])
def test_the_sampler_is_read_from_the_environment_given(sampler, arg, expected) -> None:
    tracing = configure_tracing("http://c:4318", {"OTEL_TRACES_SAMPLER": sampler, "OTEL_TRACES_SAMPLER_ARG": arg})
    assert tracing is not None
    try:
        assert expected in tracing.provider.sampler.get_description()
    finally:
        tracing.shutdown()


@pytest.mark.parametrize("name", ["OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_SCHEDULE_DELAY",
                                  "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT"])
def test_a_batching_or_limit_variable_that_is_no_number_is_an_error_naming_it(name) -> None:
    with pytest.raises(TracingConfigError, match=name):
        configure_tracing("http://c:4318", {name: "lots"})


_PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize("parent, state", [
    (_PARENT, None), (_PARENT, "vendor=abc,other=x"), (_PARENT, "not a = valid state"), (_PARENT, ""),
    (_PARENT, "k=" + "v" * 9000), (_PARENT[:-2] + "00", "a=b"), ("  " + _PARENT + "\t", None), (_PARENT + "\n", None),
    (_PARENT + "-more", None), ("01" + _PARENT[2:] + "-more", None), ("ff" + _PARENT[2:], None),
    ("00-" + "0" * 32 + "-00f067aa0ba902b7-01", None), ("00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01", None),
    (_PARENT.upper(), None), (_PARENT[:-1], None), ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff", None),
    ("", None), ("x" * 600, None), (_PARENT + "-" + "x" * 520, None), ("garbage", "a=b"),
])
def test_a_traceparent_is_read_as_the_sdks_propagator_reads_it(parent: str, state: str | None) -> None:
    """The observer's own W3C parse (no Context objects per request) against the SDK's propagator."""
    assert_read_as_the_sdk_reads_it(parent, state)


def assert_read_as_the_sdk_reads_it(parent: str, state: str | None) -> None:
    """``traceparent``/``tracestate`` parsed by the observer give what the SDK's propagator gives."""
    from opentelemetry.context import Context
    from opentelemetry.trace import get_current_span
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from gateway.observe.observation import _Otel

    carrier = {"traceparent": parent, **({"tracestate": state} if state else {})}
    expected = get_current_span(TraceContextTextMapPropagator().extract(carrier, context=Context())).get_span_context()
    ours = _Otel().extract(parent, state)
    if not expected.is_valid:
        assert ours is None
    else:
        assert ours == expected and ours.is_remote
        assert ours.trace_state == expected.trace_state and ours.trace_flags == expected.trace_flags
