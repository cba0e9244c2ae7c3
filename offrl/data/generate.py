"""The embedded dataset suite: `offrl/<env>/<level>-v0`, made on this machine from shipped policies.

Each dataset follows D4RL's locomotion protocol and is written as a Minari dataset (id = task
name) so other libraries can read it too:

- `random`: uniform random actions;
- `medium`, `expert`: the shipped medium / expert SAC policy. Actions are samples of the
  stochastic tanh-Gaussian policy, as D4RL's `collect_data.py` (`distr.sample()`) took them,
  not the deterministic mean the returns in the manifest were measured with;
- `medium-replay`: the shipped replay phases in order (SAC's uniform warm-up, then every
  snapshot before the medium one with SAC's sampled exploration actions), each given a share of
  the transitions proportional to the training steps it played; the policy switches mid-episode
  at phase boundaries, as it did in training;
- `medium-expert`: the `medium` and `expert` datasets of the same seed, one after the other
  (read back from the cache when they are there, made from the same policies, seed and size).

Sizes: 1M transitions each (D4RL's for random, medium and expert; D4RL's medium-replay was
whatever the replay buffer held, here the same training-time proportions fill 1M), medium-expert
2M. Rollouts step `num_envs` gymnasium envs in lock-step (split over worker processes, see
offrl.envs.workers) with one jitted batched policy call per vector step; every env and every
policy sample is seeded from (seed, level), so a seed gives the same bytes whatever the number of
workers, and the checksum of the transitions the loader returns is stored in the dataset's
metadata and verified on load.

The pieces: offrl.data.recipes (each dataset's recipe), offrl.data.rollouts (the lock-step
rollouts), offrl.data.recipe_checks (a cached dataset against its recipe). This module makes and
writes one dataset (`make_dataset`) and is the one import callers need.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from offrl.data import minari_io
from offrl.data.recipe_checks import (
    is_stale,
    nonstandard,
    stale_hint,
    version_metadata,
)
from offrl.data.recipes import (
    LEVELS,
    STREAMS,
    Recipe,
    dataset_id,
    episodes_checksum,
    find_recipe,
    recipes,
)
from offrl.data.rollouts import WORKERS, Advance, Segment, rollout
from offrl.errors import ConfigError

__all__ = [
    "LEVELS",
    "STREAMS",
    "WORKERS",
    "MakeInfo",
    "Recipe",
    "Segment",
    "dataset_id",
    "episodes_checksum",
    "find_recipe",
    "is_stale",
    "make_dataset",
    "nonstandard",
    "recipes",
    "remake_command",
    "rollout",
    "stale_hint",
]


@dataclass(frozen=True)
class MakeInfo:
    """Summary of one made dataset."""

    dataset_id: str
    path: Path
    seed: int
    transitions: int
    episodes: int
    episode_returns: np.ndarray
    checksum: str
    seconds: float


def remake_command(recipe: Recipe, seed: int, size: int) -> str:
    """The `offrl data make` command that makes these exact bytes again."""
    steps = "" if size == recipe.transitions else f" --steps {size}"
    return f"offrl data make {recipe.dataset_id} --seed {seed}{steps}"


def make_dataset(
    name: str,
    seed: int = 0,
    transitions: int | None = None,
    overwrite: bool = False,
    advance: Advance = lambda n: None,
    workers: int = 1,
    folder: Path | None = None,
) -> MakeInfo:
    """Roll out, checksum and write one embedded dataset to the local Minari cache (atomic).

    `transitions` overrides the size (tests, previews); the same (seed, size) gives the same
    checksum, whatever the number of env `workers` (processes started with multiprocessing's
    spawn: a calling script needs the `if __name__ == "__main__":` guard).
    """
    recipe = find_recipe(name, folder)
    minari_io.check_writable(recipe.dataset_id, overwrite)
    size = recipe.transitions if transitions is None else transitions
    if size < 1:
        raise ConfigError(f"A dataset needs at least one transition, got {size}.")
    started = time.perf_counter()
    episodes = recipe.episodes(seed, size, advance, workers)
    digest = episodes_checksum(episodes)
    env = recipe.collection_env()
    try:
        path = minari_io.write_minari_dataset(
            recipe.dataset_id,
            episodes,
            env,
            eval_env_spec=recipe.env_spec,
            algorithm_name=recipe.algorithm,
            description=(
                f"offrl embedded dataset {recipe.dataset_id}: {size} transitions, seed {seed}. "
                f"Made by `{remake_command(recipe, seed, size)}`."
            ),
            ref_scores=recipe.reference_scores(),
            extra_metadata={
                minari_io.CHECKSUM_KEY: digest,
                "offrl_seed": seed,
                "offrl_policies": recipe.policies(),
                **version_metadata(recipe),
                **recipe.statistics(episodes),
            },
            overwrite=overwrite,
        )
    finally:
        env.close()
    return MakeInfo(
        dataset_id=recipe.dataset_id,
        path=path,
        seed=seed,
        transitions=size,
        episodes=len(episodes),
        episode_returns=np.asarray([float(np.sum(e.rewards)) for e in episodes]),
        checksum=digest,
        seconds=time.perf_counter() - started,
    )
