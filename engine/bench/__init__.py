"""Benchmarks: placement problems with engine-computed truth, the model runner and the scorer."""
