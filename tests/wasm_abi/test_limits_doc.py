"""ABI.md's table of limits says what the code does: every `Limits` field, its default and its ceiling."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from wasm_abi import Limits
from wasm_abi.limits import CEILINGS

ABI_MD = Path(__file__).resolve().parents[2] / "wasm_abi" / "ABI.md"
_UNITS = {"KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "s": 1, "B": 1}
_ROW = re.compile(r"^\| `([a-z_]+)` \| ([^|]+) \| ([^|]+) \| [^|]+ \|$")


def _number(cell: str) -> float:
    """'64 MiB' -> 67108864, '0.05 s' -> 0.05, '10 000 000' -> 10000000."""
    text = cell.strip()
    scale = 1
    for unit, size in _UNITS.items():
        if text.endswith(" " + unit):
            text, scale = text[: -len(unit) - 1], size
            break
    return float(text.replace(" ", "")) * scale


def test_abi_md_lists_every_limit_with_its_default_and_ceiling() -> None:
    rows: dict[str, tuple[str, str]] = {}
    for match in map(_ROW.match, ABI_MD.read_text().splitlines()):
        if match:  # the first table naming a field is the table of all limits (later ones detail some)
            rows.setdefault(match.group(1), (match.group(2), match.group(3)))
    defaults = Limits()
    for spec in fields(Limits):
        assert spec.name in rows, f"ABI.md section 8 has no row for Limits.{spec.name}"
        default, ceiling = rows[spec.name]
        assert _number(default) == getattr(defaults, spec.name), f"ABI.md default of {spec.name}: {default}"
        assert _number(ceiling) == CEILINGS[spec.name], f"ABI.md ceiling of {spec.name}: {ceiling}"
