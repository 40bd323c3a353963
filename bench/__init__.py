"""Benchmark and soak tools (`python -m bench.run`, `python -m bench.soak`); not installed."""
