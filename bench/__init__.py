"""Benchmarks. `python -m bench` (or `just bench`) runs every `bench/bench_*.py` in turn."""
