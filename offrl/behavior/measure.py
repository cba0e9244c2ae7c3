"""Measuring behaviour policies' returns: every episode of a measurement played at once in one
vector env, with one jitted call of the deterministic policy tanh(mean) per step."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from offrl.behavior.manifest import Params, read_actor
from offrl.behavior.runs import snapshot_path
from offrl.envs import make_vector_env
from offrl.evaluate import run_episodes
from offrl.nets import TanhGaussianActor

EVAL_EPISODES = 100
EVAL_SEED = 0

Measure = Callable[[Callable[[np.ndarray], np.ndarray]], np.ndarray]


@functools.partial(jax.jit, static_argnums=0)
def deterministic_actions(actor: TanhGaussianActor, params: Params, observations) -> jax.Array:
    """tanh(mean): the policy returns are measured with, as SAC evaluates."""
    return jnp.tanh(actor.apply(params, observations)[0])


def episode_returns_of(
    env_id: str, episodes: int = EVAL_EPISODES, seed: int = EVAL_SEED
) -> tuple[Measure, gym.vector.VectorEnv]:
    """A function measuring a batched policy's returns over `episodes` envs played at once, and
    the vector env to close afterwards. Every call uses the same episode seeds."""
    envs = make_vector_env(gym.spec(env_id), episodes)

    def measure(policy: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        return run_episodes(lambda obs: policy(obs[0])[None], envs, [seed], episodes)[0]

    return measure, envs


def actor_policy(actor: TanhGaussianActor, params: Params) -> Callable[[np.ndarray], np.ndarray]:
    """Batched deterministic policy: observations (n, obs_dim) -> actions (n, action_dim)."""
    return lambda obs: np.asarray(deterministic_actions(actor, params, obs.astype(np.float32)))


def uniform_batch_policy(
    action_space: gym.spaces.Box, seed: int
) -> Callable[[np.ndarray], np.ndarray]:
    """Uniform actions for a batch of observations, seeded: D4RL's random policy."""
    rng = np.random.default_rng(seed)
    low, high = action_space.low, action_space.high
    return lambda obs: rng.uniform(low, high, (obs.shape[0], *low.shape)).astype(np.float32)


def summary(returns: np.ndarray) -> dict[str, float]:
    return {"return_mean": float(np.mean(returns)), "return_std": float(np.std(returns))}


@dataclass
class SnapshotMeter:
    """Measured returns of a run's snapshots, each measured once (a measurement plays every
    episode)."""

    measure: Measure
    actor: TanhGaussianActor
    obs_dim: int
    snapshot_runs: dict[int, Path]
    """Snapshot step -> the run folder holding it."""
    bar: tqdm
    measured: dict[int, np.ndarray] = field(default_factory=dict)
    """Every episode's return, by the step of the snapshot measured."""

    def mean_return(self, step: int) -> float:
        if step not in self.measured:
            path = snapshot_path(self.snapshot_runs[step], step)
            params = read_actor(path, self.actor, self.obs_dim)
            self.measured[step] = self.measure(actor_policy(self.actor, params))
            self.bar.update()
        return float(self.measured[step].mean())
