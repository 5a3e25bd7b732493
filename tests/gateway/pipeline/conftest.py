"""The event-pipeline tests' fixtures live in event_plane_harness (importable by the tests for its types)."""

from .event_plane_harness import event_gateway, recorder  # noqa: F401
