"""wasmtime-py's private API is used in wasm_abi/native.py only, and a wasmtime that breaks it fails here loudly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import wasmtime

import wasm_abi
from wasm_abi import native

PACKAGE = Path(wasm_abi.__file__).resolve().parent

#: What private wasmtime-py use looks like in source.
PRIVATE_USE = re.compile(
    r"wasmtime\._|from wasmtime import _|_bindings|\._context\(|_from_ptr|LAST_EXCEPTION|wrap_extern"
    r"|\._func\b|memory\._memory|\._instance\._instance"
)


def test_private_wasmtime_api_is_used_in_native_py_only() -> None:
    offenders = []
    for path in sorted(PACKAGE.glob("*.py")):
        if path.name == "native.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if PRIVATE_USE.search(line.split("#", 1)[0]):
                offenders.append(f"{path.name}:{number}: {line.strip()}")
    assert not offenders, "private wasmtime-py API outside wasm_abi/native.py:\n" + "\n".join(offenders)


def test_every_private_name_works_on_the_installed_wasmtime() -> None:
    """Fails on a wasmtime upgrade that removes or changes one, naming it and the installed version."""
    native.check_private_api()


@pytest.mark.parametrize(("owner", "attribute", "named"), [
    (wasmtime.Trap, "_from_ptr", "Trap._from_ptr"),
    (wasmtime.Store, "_context", "Store._context"),
    (wasmtime.Memory, "_from_raw", "Memory._memory"),
])
def test_a_missing_private_name_is_reported_with_the_wasmtime_version(
    monkeypatch: pytest.MonkeyPatch, owner: type, attribute: str, named: str,
) -> None:
    monkeypatch.delattr(owner, attribute)
    with pytest.raises(native.PrivateApiChanged) as caught:
        native.check_private_api()
    message = str(caught.value)
    assert named in message and attribute in message and f"wasmtime {native.WASMTIME_VERSION}" in message
    assert "wasm_abi/native.py" in message
