"""Run every `bench/bench_*.py` module in turn and print their tables.

A module whose `main()` takes no required arguments is called in this process (awaited if it
is a coroutine function); any other is run as `python -m bench.<module>` so that its own
command-line defaults apply.  `python -m bench react` runs only the modules whose name
contains "react".
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import subprocess
import sys
from pathlib import Path


def bench_modules() -> list[str]:
    return sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))


def run(module_name: str) -> int:
    module = importlib.import_module(f"bench.{module_name}")
    main = getattr(module, "main", None)
    if main is None:
        print(f"bench/{module_name}.py has no main(); skipped", file=sys.stderr)
        return 1
    required = [
        p for p in inspect.signature(main).parameters.values()
        if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if required:
        return subprocess.call([sys.executable, "-m", f"bench.{module_name}"])
    result = main()
    if inspect.iscoroutine(result):
        asyncio.run(result)
    return 0


def cli(argv: list[str]) -> int:
    names = [m for m in bench_modules() if not argv or any(a in m for a in argv)]
    failures = 0
    for name in names:
        print(f"\n## {name}\n", flush=True)
        failures += run(name) != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
