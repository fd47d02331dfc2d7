"""Benchmarks: run with ``python -m bench.webhook_bench`` from the repository root (see bench/README.md)."""
