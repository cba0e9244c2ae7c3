"""Vectorised evaluation: every seed's deterministic policy in one batch of gymnasium envs, and
the worker thread that evaluates a trained chunk while the next one trains."""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import gymnasium as gym
import jax
import numpy as np
from gymnasium.envs.registration import EnvSpec

from offrl.envs import make_vector_env
from offrl.envs.workers import WorkerVectorEnv
from offrl.errors import ConfigError

EVAL_SEED_OFFSET = 100
"""Evaluation envs are seeded from seed + 100, the official TD3+BC/PRDC/A2PR convention."""

Result = TypeVar("Result")


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


def default_eval_workers(num_envs: int) -> int:
    """Worker processes for `num_envs` evaluation envs: none (1: in this process) where JAX
    trains on the CPU, whose cores are busy; beside an accelerator, one per spare host core."""
    if jax.default_backend() == "cpu":
        return 1
    return max(1, min(num_envs, (os.cpu_count() or 1) - 1))


def check_eval_workers(workers: int | None) -> None:
    if workers is not None and workers < 1:
        raise ConfigError(f"--eval-workers must be >= 1, got {workers}")


def evaluation_envs(env_spec: EnvSpec, num_envs: int, workers: int | None = None) -> Any:
    """`num_envs` evaluation envs, stepped in `workers` processes (1: in this one; None:
    `default_eval_workers`); the episodes are the same for any number."""
    check_eval_workers(workers)
    workers = default_eval_workers(num_envs) if workers is None else workers
    if workers == 1:
        return make_vector_env(env_spec, num_envs)
    return WorkerVectorEnv(env_spec, num_envs, min(workers, num_envs))


def on_host(states: Any) -> Any:
    """`states` on the host's CPU: an accelerator's queue is busy with the next chunk, and a
    policy call placed behind it would wait for that chunk to end."""
    return jax.device_put(states, jax.devices("cpu")[0])


def evaluate_states(
    policy: Callable[[Any, np.ndarray], np.ndarray],
    states: Any,
    envs: gym.vector.VectorEnv | None,
    seeds: Sequence[int],
    episodes: int,
    task: Any,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(returns (seeds, episodes), normalised scores (seeds,)) of the seeds' policies; (None,
    None) without envs (a run with no task)."""
    if envs is None:
        return None, None
    states = on_host(states)
    returns = run_episodes(lambda obs: policy(states, obs), envs, seeds, episodes)
    return returns, task.normalized_score(returns.mean(axis=1))


class ChunkEvaluator:
    """Runs each trained chunk's evaluation on one worker thread, in order, so the next chunk
    trains meanwhile (the compiled scan and MuJoCo both leave Python's lock while they work);
    with `overlap` False, at once on the calling thread. Nothing of a run depends on which."""

    def __init__(self, overlap: bool = True):
        self._pool = (
            concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="offrl-eval")
            if overlap
            else None
        )

    def start(self, evaluate: Callable[[], Result]) -> concurrent.futures.Future[Result]:
        if self._pool is not None:
            return self._pool.submit(evaluate)
        done: concurrent.futures.Future[Result] = concurrent.futures.Future()
        try:
            done.set_result(evaluate())
        except Exception as error:  # raised where the result is read, as from the thread
            done.set_exception(error)
        return done

    def __enter__(self) -> ChunkEvaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
