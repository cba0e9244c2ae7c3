"""Several datasets of one shape trained in one compiled program: (datasets x seeds) runs.

The datasets are stacked on a leading axis, padded to the longest; each run draws its batches
only from its own dataset's rows, with the PRNG stream of the same run trained alone (`fused`),
so a group ends with the numbers of its runs trained one by one, up to float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from offrl.agent import Context
from offrl.data.transitions import Transitions, rows_below, take
from offrl.fused import Carry, seed_axes, update_compiler_options


@flax.struct.dataclass
class StackedData:
    """Datasets of equal observation and action sizes on a leading dataset axis."""

    transitions: Transitions
    """(datasets, longest, ...): each dataset's rows, then zero rows no run samples."""
    rows: jax.Array
    """(datasets,) int32: each dataset's own row count."""


def stack_datasets(datasets: Sequence[Transitions]) -> StackedData:
    """Stack (normalised) datasets of equal shapes, zero-padded to the longest, on the device."""
    longest = max(data.size for data in datasets)

    def padded(*columns):
        out = np.zeros((len(columns), longest, *np.shape(columns[0])[1:]), np.float32)
        for index, column in enumerate(columns):
            out[index, : len(column)] = np.asarray(column)
        return out

    transitions = jax.tree.map(padded, *datasets)
    rows = np.asarray([data.size for data in datasets], np.int32)
    return jax.device_put(StackedData(transitions=transitions, rows=rows))


def stack_carries(carries: Sequence[Carry]) -> Carry:
    """Runs' carries (each with a leading seed axis) on a leading dataset axis; the agent's step
    counter stays one scalar, shared by every run (see `fused.seed_axes`)."""
    axes = seed_axes(carries[0])
    return jax.tree.map(
        lambda axis, *leaves: leaves[0] if axis is None else jnp.stack(leaves),
        axes,
        *carries,
        is_leaf=lambda x: x is None,
    )


def member_carry(carry: Carry, index: int) -> Carry:
    """One dataset's carry (leading seed axis) out of a stacked one."""
    return jax.tree.map(
        lambda axis, leaf: leaf if axis is None else leaf[index],
        seed_axes(carry),
        carry,
        is_leaf=lambda x: x is None,
    )


def make_group_chunk(agent: ModuleType, carry: Carry, num_updates: int, batch_size: int):
    """Jitted (stacked carry, StackedData, stacked prepared) -> (carry, per-step metrics of shape
    (datasets, seeds, num_updates)): `fused.make_train_chunk`'s scan, each run sampling
    [0, rows) of its own dataset and seeing its own dataset's `prepared`."""
    axes = seed_axes(carry)

    def run_one(carry: Carry, table: Transitions, first: jax.Array, count: jax.Array, prepared):
        def body(carry: Carry, _):
            key, batch_key, update_key = jax.random.split(carry.key, 3)
            rows = rows_below(batch_key, batch_size, count)
            context = Context(rows=rows, prepared=prepared)
            batch = take(table, first + rows)
            state, metrics = agent.update(carry.agent, batch, update_key, context)
            return Carry(agent=state, key=key), metrics

        return jax.lax.scan(body, carry, length=num_updates)

    over_seeds = jax.vmap(run_one, in_axes=(axes, None, None, None, None), out_axes=(axes, 0))
    over_datasets = jax.vmap(over_seeds, in_axes=(axes, None, 0, 0, 0), out_axes=(axes, 0))

    def chunk(carry: Carry, stacked: StackedData, prepared: Any):
        # One table of every dataset's rows, each dataset from its first row on: a gather from an
        # unbatched table ran 61-67 upd/s per run on CPU, a dataset-batched one 45-48 (speed.py).
        datasets, longest = stacked.rows.shape[0], stacked.transitions.rewards.shape[1]
        table = jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), stacked.transitions)
        first = jnp.arange(datasets, dtype=jnp.int32) * longest
        return over_datasets(carry, table, first, stacked.rows, prepared)

    return jax.jit(chunk, compiler_options=update_compiler_options())


def stack_prepared(agent: ModuleType, prepared: Sequence[Any]) -> tuple[bool, Any]:
    """(whether the datasets' `prepare` results can share one program, stacked): nothing to
    stack for agents that prepare nothing; otherwise the agent's optional `stack_prepared`
    decides (PRDC: only its in-program search stacks; FAISS indexes stay with their dataset)."""
    if all(p is None for p in prepared):
        return True, None
    stack = getattr(agent, "stack_prepared", None)
    stacked = None if stack is None else stack(prepared)
    return stacked is not None, stacked
