"""State normalisation and reward transforms, applied once to the dataset before training."""

from __future__ import annotations

import flax.struct
import jax
import numpy as np

from offrl.data.transitions import Transitions

STD_EPS = 1e-3


@flax.struct.dataclass
class ObsNormalizer:
    """Per-dimension affine map (s - mean) / std; identity when mean 0 and std 1."""

    mean: jax.Array
    std: jax.Array

    def __call__(self, observations):
        return (observations - self.mean) / self.std


def identity_normalizer(obs_dim: int) -> ObsNormalizer:
    return ObsNormalizer(
        mean=np.zeros(obs_dim, dtype=np.float32), std=np.ones(obs_dim, dtype=np.float32)
    )


def fit_normalizer(observations: np.ndarray) -> ObsNormalizer:
    """Dataset mean/std of the observations (not next observations), std + 1e-3 as TD3+BC does."""
    observations = np.asarray(observations, dtype=np.float64)
    mean = observations.mean(axis=0).astype(np.float32)
    std = (observations.std(axis=0) + STD_EPS).astype(np.float32)
    return ObsNormalizer(mean=mean, std=std)


def normalize_transitions(transitions: Transitions, normalizer: ObsNormalizer) -> Transitions:
    return transitions.replace(
        observations=normalizer(transitions.observations).astype(np.float32),
        next_observations=normalizer(transitions.next_observations).astype(np.float32),
    )


def transform_rewards(transitions: Transitions, scale: float, shift: float) -> Transitions:
    """r' = scale * r + shift (e.g. antmaze's 10000 r - 1 in PRDC, r - 1 in IQL)."""
    rewards = np.asarray(transitions.rewards, dtype=np.float32) * scale + shift
    return transitions.replace(rewards=rewards.astype(np.float32))
