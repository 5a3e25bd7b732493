"""Build every example plugin from source, in every guest language.

Each language directory holds a `builder.py` with two functions:

- `check_toolchain() -> None` raises `ToolchainMissing` naming the install command when the
  compiler is absent, so a missing toolchain is a loud, actionable failure instead of a skip;
- `build(example_dir, kit_dir, out) -> None` compiles one example (its folder plus the language's kit in
  `wasm_abi/pdk/<lang>/`) into the module `out`, working in a temporary directory only.

Compilers are slow (Go and Zig take seconds), and the test suite asks for the same modules many times,
so `build()` skips the compiler when a content hash of everything that feeds the build (example
folder, kit folder, builder module) matches the stamp file written next to the output.

Usage: `python -m plugin_examples.build [LANG[/EXAMPLE] ...] [--force]`.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import importlib
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

LANGUAGES: tuple[str, ...] = ("wat", "c", "zig", "rust", "assemblyscript", "go")
EXAMPLES: tuple[str, ...] = ("logger", "guard", "enricher", "ratelimit", "authcheck")
#: (language, example) pairs that do not exist by design, and only those: every other pair must build.
#: WAT's kit has no http wrapper, so there is no WAT authcheck.
NOT_WRITTEN: frozenset[tuple[str, str]] = frozenset({("wat", "authcheck")})

EXAMPLES_DIR = Path(__file__).resolve().parent
REPO_ROOT = EXAMPLES_DIR.parent
KITS_DIR = REPO_ROOT / "wasm_abi" / "pdk"
BUILD_DIR = Path(os.environ.get("EVENT_GATEWAY_PLUGIN_BUILD_DIR", REPO_ROOT / "build" / "plugins"))

_IGNORED_NAMES = frozenset({"__pycache__", "node_modules", "target", "zig-cache", ".zig-cache", "zig-out"})


class ToolchainMissing(RuntimeError):
    """A language's compiler is not installed; the message says how to install it."""

    def __init__(self, lang: str, how_to_install: str) -> None:
        super().__init__(f"the {lang} toolchain is missing: {how_to_install}")
        self.lang = lang
        self.how_to_install = how_to_install


class BuildError(RuntimeError):
    """A compiler ran and failed; the message carries the command and its output."""


def builder_for(lang: str) -> ModuleType:
    """Import `plugin_examples/<lang>/builder.py`; a language without one is reported as a missing kit."""
    if lang not in LANGUAGES:
        raise ValueError(f"unknown plugin language {lang!r}; expected one of {', '.join(LANGUAGES)}")
    if not (EXAMPLES_DIR / lang / "builder.py").is_file():
        raise ToolchainMissing(lang, f"plugin_examples/{lang}/builder.py does not exist (no {lang} kit yet)")
    return importlib.import_module(f"plugin_examples.{lang}.builder")


def examples_for(lang: str) -> tuple[str, ...]:
    """The examples written in `lang`: EXAMPLES without the pairs of NOT_WRITTEN."""
    return tuple(example for example in EXAMPLES if (lang, example) not in NOT_WRITTEN)


def output_path(lang: str, example: str) -> Path:
    return BUILD_DIR / lang / f"{example}.wasm"


def example_dir(lang: str, example: str) -> Path:
    """The example's source: `<lang>/<example>/`, or a single file `<lang>/<example>.<ext>` (WAT)."""
    folder = EXAMPLES_DIR / lang / example
    if folder.is_dir():
        return folder
    singles = sorted((EXAMPLES_DIR / lang).glob(f"{example}.*"))
    return singles[0] if singles else folder


def kit_dir(lang: str) -> Path:
    return KITS_DIR / lang


def _tree_files(root: Path) -> Iterable[Path]:
    if root.is_file():
        yield root
        return
    if not root.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _IGNORED_NAMES and not d.startswith("."))
        for name in sorted(filenames):
            if not name.endswith((".pyc", ".wasm")):
                yield Path(dirpath) / name


def source_hash(lang: str, source: Path) -> str:
    """Hash of every input of one build: the source (folder or file), the kit folder and the builder."""
    digest = hashlib.sha256()
    roots = (source, kit_dir(lang), EXAMPLES_DIR / lang / "builder.py")
    for root in roots:
        for path in _tree_files(root):
            digest.update(str(path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path).encode())
            digest.update(b"\0")
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()


def _stamp_path(out: Path) -> Path:
    return out.with_suffix(".wasm.stamp")


def _is_fresh(lang: str, source: Path, out: Path) -> bool:
    stamp = _stamp_path(out)
    return out.is_file() and stamp.is_file() and stamp.read_text().strip() == source_hash(lang, source)


def is_fresh(lang: str, example: str) -> bool:
    return _is_fresh(lang, example_dir(lang, example), output_path(lang, example))


def build_source(lang: str, source: Path, out: Path, *, force: bool = False) -> Path:
    """Compile any source folder (or WAT file) against `lang`'s kit into `out`, unless up to date.

    The examples go through here, and so do test modules such as the kits' msgpack round-trip programs.
    Raises `ToolchainMissing` when the language cannot be built on this machine (never a silent skip).
    """
    builder = builder_for(lang)
    if not source.exists():
        raise ToolchainMissing(lang, f"the {lang} source {source} is missing")
    digest = source_hash(lang, source)
    stamp = _stamp_path(out)
    if not force and out.is_file() and stamp.is_file() and stamp.read_text().strip() == digest:
        return out
    builder.check_toolchain()
    out.parent.mkdir(parents=True, exist_ok=True)
    # One build of `out` at a time across processes (parallel test workers): the second one waits, then
    # finds it up to date.
    with out.with_suffix(".wasm.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and out.is_file() and stamp.is_file() and stamp.read_text().strip() == digest:
            return out
        partial = out.with_suffix(f".wasm.{os.getpid()}.tmp")
        try:
            builder.build(source, kit_dir(lang), partial)
            if not partial.is_file():
                raise BuildError(f"the {lang} builder did not produce {partial}")
            os.replace(partial, out)
        finally:
            partial.unlink(missing_ok=True)
        stamp.write_text(digest + "\n")
    return out


def build(lang: str, example: str, *, force: bool = False) -> Path:
    """Compile one example into `build/plugins/<lang>/<example>.wasm`, unless it is already up to date."""
    if example not in EXAMPLES:
        raise ValueError(f"unknown example {example!r}; expected one of {', '.join(EXAMPLES)}")
    if (lang, example) in NOT_WRITTEN:
        raise ValueError(f"there is no {lang} {example} example (see NOT_WRITTEN in plugin_examples/build.py)")
    builder_for(lang)
    return build_source(lang, example_dir(lang, example), output_path(lang, example), force=force)


def build_all(
    languages: Iterable[str] = LANGUAGES, examples: Iterable[str] = EXAMPLES, *, force: bool = False
) -> dict[tuple[str, str], Path]:
    """Build every (language, example) but the NOT_WRITTEN pairs; the first missing toolchain, missing
    source or failed build raises."""
    examples = tuple(examples)
    return {(lang, ex): build(lang, ex, force=force) for lang in languages for ex in examples
            if (lang, ex) not in NOT_WRITTEN}


def _parse_targets(targets: list[str]) -> list[tuple[str, str]]:
    if not targets:
        return [(lang, ex) for lang in LANGUAGES for ex in examples_for(lang)]
    pairs: list[tuple[str, str]] = []
    for target in targets:
        lang, _, example = target.partition("/")
        if lang not in LANGUAGES:
            raise SystemExit(f"unknown language {lang!r} in {target!r}; expected one of {', '.join(LANGUAGES)}")
        if example and example not in examples_for(lang):
            raise SystemExit(f"unknown example {example!r} in {target!r}; {lang} has {', '.join(examples_for(lang))}")
        pairs.extend((lang, ex) for ex in ((example,) if example else examples_for(lang)))
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plugin_examples.build", description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help="LANG or LANG/EXAMPLE (default: everything)")
    parser.add_argument("--force", action="store_true", help="rebuild even when the stamp says up to date")
    args = parser.parse_args(argv)
    failures: list[str] = []
    for lang, example in _parse_targets(args.targets):
        fresh = not args.force and is_fresh(lang, example) if (EXAMPLES_DIR / lang / "builder.py").is_file() else False
        started = time.perf_counter()
        try:
            out = build(lang, example, force=args.force)
        except (ToolchainMissing, BuildError) as exc:
            failures.append(f"{lang}/{example}: {exc}")
            print(f"FAILED  {lang}/{example}: {exc}", file=sys.stderr)
            continue
        elapsed = time.perf_counter() - started
        state = "fresh " if fresh else "built "
        rel = out.relative_to(REPO_ROOT) if out.is_relative_to(REPO_ROOT) else out
        print(f"{state} {rel}  {out.stat().st_size:>9,} B  {elapsed:6.2f} s")
    if failures:
        print(f"{len(failures)} build(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
