"""Side-by-side benchmarks of safehold and its peers; run ``python -m benchmarks``."""
