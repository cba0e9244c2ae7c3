"""A trained policy to take away: raw observations in, actions out, the normaliser inside.

`load_policy(run_dir, seed=...)` restores one seed of a run folder, `Policy.from_fit` takes one
seed of a `fit` result, and `Policy.export` writes a self-contained file (the policy compiled to
StableHLO with `jax.export`, batch size left symbolic) that `load_exported` runs with JAX alone:
no offrl training code, no agent module, no checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from offrl.agent import config_from_dict, resolve_agent
from offrl.checkpoint import Checkpointer
from offrl.data.normalization import ObsNormalizer
from offrl.errors import ConfigError
from offrl.fused import Carry, init_carry, seed_axes
from offrl.run_files import atomic_write
from offrl.run_manifest import read_run_manifest

EXPORT_FORMAT = "offrl-policy/1"


@dataclasses.dataclass(frozen=True)
class Policy:
    """One seed's deterministic policy on raw observations: (n, obs_dim) or (obs_dim,)."""

    agent: ModuleType
    state: Any
    normalizer: ObsNormalizer
    step: int | None = None
    """The checkpoint step it was restored from (None: taken from a `fit` result)."""

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        observations = np.asarray(observations, dtype=np.float32)
        return np.asarray(_act(self.agent, self.state, self.normalizer, observations))

    @classmethod
    def from_fit(cls, agent: ModuleType, result: Any, seed_index: int = 0) -> Policy:
        """The policy of `result.carry`'s `seed_index`-th seed (a `offrl.train.FitResult`)."""
        return cls(agent, one_seed(result.carry, seed_index), result.normalizer)

    def export(self, path: Path, metadata: dict[str, Any] | None = None) -> Path:
        """Write the policy as one self-contained file; `load_exported` reads it."""
        obs_dim = int(np.asarray(self.normalizer.mean).shape[-1])
        batch = jax.export.symbolic_shape(f"batch, {obs_dim}")
        traced = jax.jit(lambda obs: _act(self.agent, self.state, self.normalizer, obs))
        exported = jax.export.export(traced)(jax.ShapeDtypeStruct(batch, jnp.float32))
        header = {"format": EXPORT_FORMAT, "obs_dim": obs_dim, **(metadata or {})}
        data = json.dumps(header, sort_keys=True).encode() + b"\n" + bytes(exported.serialize())
        path = Path(path)
        atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
        return path


def _act(agent: ModuleType, state: Any, normalizer: ObsNormalizer, observations):
    single = observations.ndim == 1
    batch = observations[None] if single else observations
    actions = agent.act(state, normalizer(batch))
    return actions[0] if single else actions


def one_seed(carry: Carry, index: int) -> Any:
    """The agent state of one seed of a vmapped carry (leaves without a seed axis kept)."""
    axes = seed_axes(carry).agent
    return jax.tree.map(
        lambda axis, x: x if axis is None else x[index],
        axes,
        carry.agent,
        is_leaf=lambda axis: axis is None,
    )


def load_policy(run_dir: Path, seed: int | None = None, step: int | None = None) -> Policy:
    """Seed `seed` (default: the run's first) of a run folder's checkpoint at `step` (default:
    the newest) as a Policy on raw observations."""
    run_dir = Path(run_dir)
    manifest = read_run_manifest(run_dir)
    if manifest is None:
        raise ConfigError(f"{run_dir} is not a run folder (no run.json); pass one of offrl train")
    seed = manifest.seeds[0] if seed is None else seed
    if seed not in manifest.seeds:
        raise ConfigError(f"{run_dir} trained seeds {list(manifest.seeds)}, not seed {seed}")
    agent = resolve_agent(manifest.agent)
    config = config_from_dict(agent.Config, manifest.config)
    carry = init_carry(agent, manifest.spec, config, list(manifest.seeds))
    checkpointer = Checkpointer(run_dir)
    try:
        step = checkpointer.latest_step() if step is None else step
        if step not in checkpointer.all_steps():
            raise ConfigError(
                f"{run_dir} has no checkpoint at step {step}; it has "
                f"{checkpointer.all_steps() or 'none'}"
            )
        carry, _ = checkpointer.restore(step, carry)
    finally:
        checkpointer.close()
    normalizer = ObsNormalizer(
        mean=np.asarray(manifest.normalizer.mean, np.float32),
        std=np.asarray(manifest.normalizer.std, np.float32),
    )
    return Policy(agent, one_seed(carry, manifest.seeds.index(seed)), normalizer, step)


def load_exported(path: Path) -> tuple[Callable[[np.ndarray], np.ndarray], dict[str, Any]]:
    """An exported policy file as (observations (n, obs_dim) -> actions, its metadata)."""
    header, _, payload = Path(path).read_bytes().partition(b"\n")
    metadata = json.loads(header)
    if metadata.get("format") != EXPORT_FORMAT:
        raise ConfigError(f"{path} is not an offrl policy file ({EXPORT_FORMAT})")
    exported = jax.export.deserialize(bytearray(payload))

    def act(observations: np.ndarray) -> np.ndarray:
        batch = np.atleast_2d(np.asarray(observations, dtype=np.float32))
        actions = np.asarray(exported.call(batch))
        return actions[0] if np.ndim(observations) == 1 else actions

    return act, metadata
