"""Vectorised evaluation: every seed's deterministic policy in one batch of gymnasium envs."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import gymnasium as gym
import numpy as np

EVAL_SEED_OFFSET = 100
"""Evaluation envs are seeded from seed + 100, the official TD3+BC/PRDC/A2PR convention."""


def episode_seeds(seed: int, episodes: int) -> list[int]:
    """Distinct env seeds for one training seed's episodes, rooted at seed + 100."""
    states = np.random.SeedSequence(seed + EVAL_SEED_OFFSET).generate_state(episodes)
    return [int(s) for s in states]


def run_episodes(
    policy: Callable[[np.ndarray], np.ndarray],
    envs: gym.vector.VectorEnv,
    seeds: Sequence[int],
    episodes: int,
) -> np.ndarray:
    """One episode in each env; returns undiscounted returns of shape (len(seeds), episodes).

    `envs` holds len(seeds) * episodes envs; `policy` maps observations of shape
    (seeds, episodes, obs_dim) to actions of shape (seeds, episodes, action_dim).
    """
    num_seeds = len(seeds)
    if envs.num_envs != num_seeds * episodes:
        raise ValueError(f"need {num_seeds * episodes} envs, got {envs.num_envs}")
    env_seeds = [s for seed in seeds for s in episode_seeds(seed, episodes)]
    observations, _ = envs.reset(seed=env_seeds)
    returns = np.zeros(envs.num_envs)
    finished = np.zeros(envs.num_envs, dtype=bool)
    while not finished.all():
        actions = policy(observations.reshape(num_seeds, episodes, -1))
        actions = np.asarray(actions).reshape(envs.num_envs, -1)
        observations, rewards, terminated, truncated, _ = envs.step(actions)
        # Envs that already finished are auto-reset by the vector env; their steps do not count.
        returns += np.where(finished, 0.0, rewards)
        finished |= terminated | truncated
    return returns.reshape(num_seeds, episodes)
