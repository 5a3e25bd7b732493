"""Red team: hostile ``traceparent``/``tracestate`` values read by the observer's own W3C parse
(``_Otel.extract``) exactly as the SDK's ``TraceContextTextMapPropagator`` reads them."""

from __future__ import annotations

import pytest

from tests.gateway.observe.test_tracing_config import assert_read_as_the_sdk_reads_it

_P = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
_V1 = "01" + _P[2:]

_PARENTS = [
    _P + "-", _V1 + "-", _V1 + "-x", _V1 + " ", _V1 + "\t", _P + " ", _P + "\r", _P + "\r\n", "\n" + _P, "\r" + _P,
    " \t " + _P, _P + "\n\n", _V1 + "\n", _V1 + "-\n", "0a" + _P[2:], "fe" + _P[2:], "FF" + _P[2:], _P[:-2] + "FF",
    "00-4BF92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", _P + "x", _V1 + "x", _P + "\x0b", _P + "\x0c",
    _P + "\u00a0", "\u00a0" + _P, _V1 + "-" + "x" * 453, _V1 + "-" + "x" * 454, " " * 457 + _P, " " * 456 + _P,
    _P + " " * 457, _P + " " * 458,
    "00-\u0664bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # an Arabic-Indic digit
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0\u0661",
    "00-" + "0" * 32 + "-" + "0" * 16 + "-00", "ff-" + "0" * 32 + "-00f067aa0ba902b7-01",
]
_STATES = [
    "," * 10000, "," * 5000, "a=b" + ",c=d" * 31, "a=b" + ",c=d" * 32, "a=b" + ",c=d" * 40, "a=1,a=2", "A=b",
    "a=b,,,c=d", " a=b , c=d ", "a=b\tc", "a=" + "x" * 300, "a@b=c", "k=" + "v" * 256, "k=" + "v" * 257,
    "a=b," * 2000, "a=b," * 2048,
]


_check = assert_read_as_the_sdk_reads_it


@pytest.mark.parametrize("parent", _PARENTS)
def test_a_hostile_traceparent_is_read_as_the_sdk_reads_it(parent: str) -> None:
    _check(parent, None)


@pytest.mark.parametrize("parent", [_P, _V1 + "-x"])
@pytest.mark.parametrize("state", _STATES)
def test_a_hostile_tracestate_is_read_as_the_sdk_reads_it(parent: str, state: str) -> None:
    _check(parent, state)
