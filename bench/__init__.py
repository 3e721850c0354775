"""Benchmarks (NLU: python -m bench.nlu)."""
