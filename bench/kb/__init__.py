"""Knowledge-base benchmarks: ``python -m bench.kb.scale`` (index size, memory, latency, recall at
10k/100k/1M chunks) and the quality benchmark beside it."""
