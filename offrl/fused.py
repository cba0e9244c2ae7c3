"""Chunks of updates fused in one compiled `lax.scan`, vmapped over seeds: the carry, its vmap
axes, the compiled chunk, the health check and the seeds' batched policies."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from offrl.agent import Context, DatasetSpec
from offrl.data.normalization import ObsNormalizer
from offrl.data.transitions import Transitions, sample_rows, take


@flax.struct.dataclass
class Carry:
    """What the scan carries per seed: the agent's state and its own PRNG key."""

    agent: Any
    key: jax.Array


def init_carry(agent: ModuleType, spec: DatasetSpec, config: Any, seeds: Sequence[int]) -> Carry:
    """Independent initial states for every seed: PRNGKey(seed) -> (init key, training key).

    Every leaf gets a leading seed axis except the agent's step counter, which all seeds share
    (see `seed_axes`).
    """

    def one_seed(seed):
        init_key, train_key = jax.random.split(jax.random.PRNGKey(seed))
        return Carry(agent=agent.init(init_key, spec, config), key=train_key)

    # Jitted: op-by-op initialisation of every layer costs seconds of dispatch on CPU.
    carry = jax.jit(jax.vmap(one_seed))(jnp.asarray(seeds, dtype=jnp.uint32))
    if hasattr(carry.agent, "step"):
        return carry.replace(agent=carry.agent.replace(step=carry.agent.step[0]))
    return carry


def seed_axes(carry: Carry) -> Carry:
    """vmap axes of a carry: every leaf has a seed axis except the agent's shared step counter.

    Keeping `step` unbatched keeps the delayed actor update a real `lax.cond` under vmap
    (a batched predicate would turn it into a select that runs both branches every step).
    """
    axes = jax.tree.map(lambda _: 0, carry)
    if hasattr(carry.agent, "step"):
        axes = axes.replace(agent=axes.agent.replace(step=None))
    return axes


def all_finite(tree: Any) -> jax.Array:
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
    return jnp.all(jnp.stack([jnp.isfinite(x).all() for x in leaves]))


@jax.jit  # one compiled check instead of a dispatch per parameter array
def healthy(state: Any, metrics: dict) -> jax.Array:
    """Finite parameters and no infinite loss (NaN metrics mean "not updated at this step")."""
    no_inf = jnp.all(jnp.stack([~jnp.isinf(m).any() for m in jax.tree.leaves(metrics)]))
    return all_finite(state) & no_inf


# Eigen's dots ran batch-256 updates x0.97-1.19 as fast as XLA's default (YNNPACK) on two VMs.
EIGEN_DOTS = {"xla_cpu_experimental_ynn_fusion_type": ""}


@functools.cache
def update_compiler_options() -> dict[str, str] | None:
    """XLA options for compiled updates: Eigen dots on CPU when this XLA has YNNPACK, else none."""
    if jax.default_backend() != "cpu":
        return None
    probe = jax.jit(lambda x: x @ x, compiler_options=EIGEN_DOTS)
    try:
        probe.lower(jnp.ones((2, 2), jnp.float32)).compile()
    except jax.errors.JaxRuntimeError:  # an XLA from before YNNPACK has no such option
        return None
    return EIGEN_DOTS


def make_train_chunk(
    agent: ModuleType,
    carry: Carry,
    num_updates: int,
    batch_size: int,
    check_finite: bool = False,
    xla_default_dots: bool = False,
):
    """Jitted (carry, data, prepared) -> (carry, per-step metrics of shape (seeds, num_updates)).

    `prepared` is the agent's `prepare` result, shared by all seeds; each update gets it with
    the batch's dataset rows as its `Context`. With `check_finite`, each step also reports
    whether it stayed `healthy`: used only to locate a divergence after the fact, so the hot
    path pays nothing.
    `xla_default_dots` compiles without `update_compiler_options()`, for the speed benchmark.
    """
    axes = seed_axes(carry)

    def run_one_seed(carry: Carry, data: Transitions, prepared: Any):
        def body(carry: Carry, _):
            key, batch_key, update_key = jax.random.split(carry.key, 3)
            rows = sample_rows(data, batch_key, batch_size)
            batch = take(data, rows)
            context = Context(rows=rows, prepared=prepared)
            state, metrics = agent.update(carry.agent, batch, update_key, context)
            out = (metrics, healthy(state, metrics)) if check_finite else metrics
            return Carry(agent=state, key=key), out

        return jax.lax.scan(body, carry, length=num_updates)

    return jax.jit(
        jax.vmap(run_one_seed, in_axes=(axes, None, None), out_axes=(axes, 0)),
        compiler_options=None if xla_default_dots else update_compiler_options(),
    )


def act_fn(agent: ModuleType, carry: Carry, normalizer: ObsNormalizer):
    """Batched deterministic policies: observations (seeds, n, obs_dim) -> actions."""
    axes = seed_axes(carry).agent
    act = jax.jit(jax.vmap(lambda s, o: agent.act(s, normalizer(o)), in_axes=(axes, 0)))
    return lambda states, observations: np.asarray(act(states, jnp.asarray(observations)))
