"""Vectorised evaluation: every seed's deterministic policy in one batch of gymnasium envs."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType

import gymnasium as gym
import numpy as np

from offrl.errors import ConfigError

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


def evaluate_checkpoint(
    run_dir: Path,
    agents: Mapping[str, ModuleType],
    episodes: int | None = None,
    step: int | None = None,
) -> str:
    """Restore a run folder's checkpoint and evaluate every seed's policy; returns a report.

    `agents` maps the agent names a run folder may name to their modules (the command line
    passes `agents.AGENTS`)."""
    from offrl.agent import DatasetSpec, config_from_dict
    from offrl.checkpoint import CheckpointDamaged, Checkpointer
    from offrl.data.normalization import ObsNormalizer
    from offrl.data.registry import resolve_task
    from offrl.envs import make_vector_env
    from offrl.results import read_manifest
    from offrl.train import _unbatch_shared, act_fn, init_carry

    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    if manifest is None:
        raise ConfigError(
            f"{run_dir} is not a run folder (no run.json); pass a folder from offrl train"
        )
    if manifest["task"] is None:
        raise ConfigError(
            f"{run_dir} was trained without a task, so it has no environment to evaluate in"
        )
    agent = agents[manifest["agent"]]
    config = config_from_dict(agent.Config, manifest["config"])
    seeds = manifest["seeds"]
    episodes = manifest["eval_episodes"] if episodes is None else episodes
    if episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {episodes}")
    checkpointer = Checkpointer(run_dir)
    step = step if step is not None else checkpointer.latest_step()
    available = checkpointer.all_steps()
    if step not in available:
        raise ConfigError(
            f"{run_dir} has no checkpoint at step {step}; it has {available or 'none'}"
        )
    task = resolve_task(manifest["task"])
    normalizer = ObsNormalizer(
        mean=np.asarray(manifest["normalizer"]["mean"], np.float32),
        std=np.asarray(manifest["normalizer"]["std"], np.float32),
    )
    carry = _unbatch_shared(init_carry(agent, DatasetSpec(**manifest["spec"]), config, seeds))
    try:
        carry, _ = checkpointer.restore(step, carry)
    except CheckpointDamaged as err:
        others = [s for s in available if s != step and checkpointer.damage(s) is None]
        instead = f"evaluate step {others[-1]} with --step {others[-1]}, or " if others else ""
        raise CheckpointDamaged(
            f"{err}. Its scores would mean nothing: {instead}resume the run (the same "
            f"`offrl train ... --out {run_dir}`), which falls back to the newest intact "
            "checkpoint and trains from there"
        ) from None
    finally:
        checkpointer.close()
    policy = act_fn(agent, carry, normalizer)
    envs = make_vector_env(task.env_spec, len(seeds) * episodes)
    try:
        returns = run_episodes(lambda obs: policy(carry.agent, obs), envs, seeds, episodes)
    finally:
        envs.close()
    scores = task.normalized_score(returns.mean(axis=1))
    lines = [
        f"{manifest['agent']} on {task.name}, checkpoint step {step}, {episodes} episodes/seed"
    ]
    for i, seed in enumerate(seeds):
        score = "" if scores is None else f", normalised score {scores[i]:.1f}"
        lines.append(
            f"  seed {seed}: return {returns[i].mean():.1f} ± {returns[i].std():.1f}{score}"
        )
    return "\n".join(lines)
