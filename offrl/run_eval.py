"""`offrl eval`: restore a run folder's checkpoint and evaluate every seed's policy in its task's
environment."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from offrl.agent import config_from_dict, resolve_agent
from offrl.checkpoint import CheckpointDamaged, Checkpointer
from offrl.data.normalization import ObsNormalizer
from offrl.data.registry import resolve_task
from offrl.envs import make_vector_env
from offrl.errors import ConfigError
from offrl.evaluate import run_episodes
from offrl.fused import act_fn, init_carry
from offrl.run_manifest import read_run_manifest


def evaluate_checkpoint(run_dir: Path, episodes: int | None = None, step: int | None = None) -> str:
    """Restore a run folder's checkpoint and evaluate every seed's policy; returns a report."""
    run_dir = Path(run_dir)
    manifest = read_run_manifest(run_dir)
    if manifest is None:
        raise ConfigError(
            f"{run_dir} is not a run folder (no run.json); pass a folder from offrl train"
        )
    if manifest.task is None:
        raise ConfigError(
            f"{run_dir} was trained without a task, so it has no environment to evaluate in"
        )
    agent = resolve_agent(manifest.agent)
    config = config_from_dict(agent.Config, manifest.config)
    seeds = list(manifest.seeds)
    episodes = manifest.eval_episodes if episodes is None else episodes
    if episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {episodes}")
    checkpointer = Checkpointer(run_dir)
    step = step if step is not None else checkpointer.latest_step()
    available = checkpointer.all_steps()
    if step not in available:
        raise ConfigError(
            f"{run_dir} has no checkpoint at step {step}; it has {available or 'none'}"
        )
    task = resolve_task(manifest.task)
    normalizer = ObsNormalizer(
        mean=np.asarray(manifest.normalizer.mean, np.float32),
        std=np.asarray(manifest.normalizer.std, np.float32),
    )
    carry = init_carry(agent, manifest.spec, config, seeds)
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
    lines = [f"{manifest.agent} on {task.name}, checkpoint step {step}, {episodes} episodes/seed"]
    for i, seed in enumerate(seeds):
        score = "" if scores is None else f", normalised score {scores[i]:.1f}"
        lines.append(
            f"  seed {seed}: return {returns[i].mean():.1f} ± {returns[i].std():.1f}{score}"
        )
    return "\n".join(lines)
