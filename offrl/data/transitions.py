"""The on-device transition table and in-jit minibatch sampling."""

from __future__ import annotations

import hashlib

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

FIELDS = ("observations", "actions", "rewards", "next_observations", "dones")


@flax.struct.dataclass
class Transitions:
    """Float32 arrays with a leading transition axis; rewards and dones are 1-D."""

    observations: jax.Array
    actions: jax.Array
    rewards: jax.Array
    next_observations: jax.Array
    dones: jax.Array

    @property
    def size(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def obs_dim(self) -> int:
        return int(self.observations.shape[-1])

    @property
    def action_dim(self) -> int:
        return int(self.actions.shape[-1])


def from_numpy(arrays: dict[str, np.ndarray]) -> Transitions:
    """Host arrays (any float dtype) -> float32 numpy Transitions, not yet on a device."""
    return Transitions(**{k: np.asarray(arrays[k], dtype=np.float32) for k in FIELDS})


def to_device(transitions: Transitions) -> Transitions:
    """Place the table on the default device once; training then samples it inside jit."""
    return jax.device_put(transitions)


def sample_rows(transitions: Transitions, key: jax.Array, batch_size: int) -> jax.Array:
    """Uniform row indices with replacement, as every reference implementation draws them."""
    return rows_below(key, batch_size, transitions.rewards.shape[0])


def rows_below(key: jax.Array, batch_size: int, row_count: int | jax.Array) -> jax.Array:
    """Uniform row indices in [0, row_count) with replacement; `row_count` may be traced (a
    padded table's own rows), and draws the same indices as the same count given statically."""
    return jax.random.randint(key, (batch_size,), 0, row_count)


def take(transitions: Transitions, rows: jax.Array) -> Transitions:
    return jax.tree.map(lambda x: jnp.take(x, rows, axis=0), transitions)


def sample(transitions: Transitions, key: jax.Array, batch_size: int) -> Transitions:
    """A uniform minibatch with replacement."""
    return take(transitions, sample_rows(transitions, key, batch_size))


def checksum(transitions: Transitions) -> str:
    """sha256 over the float32 bytes of every field: identifies the exact data a run saw."""
    digest = hashlib.sha256()
    for name in FIELDS:
        array = np.ascontiguousarray(np.asarray(getattr(transitions, name), dtype=np.float32))
        digest.update(name.encode())
        digest.update(str(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def episode_returns(transitions: Transitions) -> np.ndarray:
    """Undiscounted return of each episode seen in the table.

    An episode ends at a done or where the next observation is not the following row's
    observation (a dropped time-out, or a new episode after a truncation).
    """
    observations = np.asarray(transitions.observations)
    next_observations = np.asarray(transitions.next_observations)
    ends = np.asarray(transitions.dones) > 0
    ends[:-1] |= np.any(next_observations[:-1] != observations[1:], axis=1)
    ends[-1] = True
    starts = np.r_[0, np.flatnonzero(ends)[:-1] + 1]
    return np.add.reduceat(np.asarray(transitions.rewards, dtype=np.float64), starts)
