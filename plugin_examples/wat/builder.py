"""WAT examples are single self-contained files (the kit is a template copied into each), so building
one is a text-to-binary conversion by wasmtime's own `wat2wasm`: no toolchain beyond the host's."""

from __future__ import annotations

from pathlib import Path

from plugin_examples.build import BuildError, ToolchainMissing


def check_toolchain() -> None:
    try:
        import wasmtime  # noqa: F401
    except ImportError as exc:  # pragma: no cover - wasmtime is a hard dependency of the project
        raise ToolchainMissing("wat", "pip install 'wasmtime>=50,<51' (or `just install`)") from exc


def build(example_dir: Path, kit_dir: Path, out: Path) -> None:
    import wasmtime

    source = example_dir if example_dir.is_file() else example_dir / "plugin.wat"
    try:
        out.write_bytes(wasmtime.wat2wasm(source.read_text()))
    except wasmtime.WasmtimeError as exc:
        raise BuildError(f"{source}: {exc}") from exc
