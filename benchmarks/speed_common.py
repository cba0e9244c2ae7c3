"""What the speed benchmarks share: the synthetic halfcheetah-shaped dataset and the timer."""

from __future__ import annotations

import time

import jax
import numpy as np

from offrl.agent import DatasetSpec
from offrl.data.transitions import Transitions
from offrl.fused import Carry, init_carry

OBS_DIM, ACTION_DIM = 17, 6


def random_dataset(size: int, seed: int = 0) -> Transitions:
    rng = np.random.default_rng(seed)
    return jax.device_put(
        Transitions(
            observations=rng.standard_normal((size, OBS_DIM), dtype=np.float32),
            actions=rng.uniform(-1, 1, (size, ACTION_DIM)).astype(np.float32),
            rewards=rng.standard_normal(size, dtype=np.float32),
            next_observations=rng.standard_normal((size, OBS_DIM), dtype=np.float32),
            dones=(rng.uniform(size=size) < 0.01).astype(np.float32),
        )
    )


def best_seconds(call, repeats: int) -> float:
    """Best of `repeats` timings: the machine is shared, noise only ever adds time."""
    call()
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - began)
    return best


def single_seed(agent, config) -> Carry:
    """One seed's carry with the shared step counter, as the loop's scan body sees it."""
    return init_carry(agent, DatasetSpec(OBS_DIM, ACTION_DIM), config, [0])
