"""Benchmark profiles, per-task hyper-parameters and speed benchmarks."""
