"""offrl: offline reinforcement learning on JAX, with fused and seed-vmapped training."""

__version__ = "0.1.0"
