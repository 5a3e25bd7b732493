"""Fixtures of the observation tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .otlp_receiver import OtlpReceiver


@pytest.fixture
async def otlp() -> AsyncIterator[OtlpReceiver]:
    """A real OTLP/HTTP receiver on a free port, decoding what it is sent."""
    receiver = OtlpReceiver()
    await receiver.start()
    yield receiver
    await receiver.stop()
