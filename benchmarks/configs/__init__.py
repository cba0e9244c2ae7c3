"""Per-agent, per-task hyper-parameters from the official sources (ALGORITHMS.md)."""
