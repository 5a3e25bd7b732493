"""tests/delivery fixtures live in event_plane_harness (importable by the tests for its types)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from event_plane_harness import event_gateway, recorder  # noqa: F401
