"""PRDC (Ran et al., ICML 2023), faithful to the official code `LAMDA-RL/PRDC`.

TD3+BC whose behaviour-cloning target is not the sampled row's action but the action of the k-th
nearest (beta * state, action) pair of the WHOLE dataset, queried with (beta * s, pi(s)):

    a* = action of argmin_i  beta^2 |s - s_i|^2 + |pi(s) - a_i|^2      (k = 1; no gradient)
    L  = -lambda mean Q1(s, pi(s)) + mean (pi(s) - a*)^2,  lambda = alpha / mean|Q1(s, pi(s))|

The critic step is TD3+BC's. The search is `offrl.neighbors`' dataset constraint, built once by
`prepare` from the normalised data; the agent does not know which backend answers it.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from agents.td3bc import State, act, init, update_critic
from offrl.agent import Context
from offrl.data.transitions import Transitions
from offrl.neighbors import (
    DatasetConstraint,
    Neighbourhood,
    build_constraint,
    gather_neighbourhood,
    neighbour_actions,
    stack_constraints,
    validate_search,
)
from offrl.td3 import TD3Config, actor_step, first_member, normalized_q_bc_loss, td3_update

__all__ = [
    "BEHAVIOR_VERSION",
    "OFFICIAL",
    "Config",
    "State",
    "act",
    "init",
    "prepare",
    "stack_prepared",
    "update",
]


# Bumped whenever `update` (td3bc's critic step included) changes what it computes.
BEHAVIOR_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Config(TD3Config):
    """TD3+BC's defaults plus the dataset constraint; per-task alpha/beta live in benchmarks/.

    beta defaults to 1.0, the official command line's default (`utils/config.py`), which every
    official run without a README line uses (the PRDC class's own keyword default, 2, is never
    reached: the command line always passes its value).
    """

    beta: float = 1.0
    """Weight of the state part of the (beta * state, action) keys."""
    k: int = 1
    """The k-th nearest pair is the target (the official code's `[k]` index; 1 = nearest)."""
    search: str = "auto"
    """Neighbour search: auto (faiss-ivf-exact on CPU, jax on accelerators); exact: faiss-ivf-exact,
    faiss-flat, jax; approximate: faiss-hnsw, faiss-ivf."""
    candidates: int = 32
    """Rows per certified candidate list (exact shortcut in front of the search); 0 = off."""
    memory: int = 16
    """Nearest keys the exact FAISS searches keep per row from its last search, to answer the row's
    later queries exactly without one while the policy's action there moves little; 0 = off."""
    hnsw_m: int = 32
    """faiss-hnsw: graph degree."""
    hnsw_ef_search: int = 64
    """faiss-hnsw: search breadth (higher = better recall, slower)."""
    ivf_lists: int = 4096
    """faiss-ivf: number of k-means cells."""
    ivf_nprobe: int = 16
    """faiss-ivf: cells visited per query."""

    def __post_init__(self) -> None:
        super().__post_init__()
        validate_search(self.search, self.k, self.candidates, self.memory)


# As the official code `LAMDA-RL/PRDC` runs each family: its README's example commands
# (halfcheetah; "hopper & walker2d" is one line; antmaze with --scale=10000 --shift=-1), applied
# to all of the family's datasets. Every other task gets no README line, so the official run
# takes the command-line defaults of `utils/config.py` (alpha 2.5, beta 1.0): the Config's.
OFFICIAL: dict[str, dict[str, float]] = {
    "halfcheetah": {"alpha": 40.0, "beta": 2.0},
    "hopper": {"alpha": 2.5, "beta": 2.0},
    "walker2d": {"alpha": 2.5, "beta": 2.0},
    "antmaze": {"alpha": 7.5, "beta": 7.5, "reward_scale": 10000.0, "reward_shift": -1.0},
}


def prepare(data: Transitions, config: Config) -> DatasetConstraint:
    """The dataset constraint over the (normalised) training data, built once per run."""
    return build_constraint(
        np.asarray(data.observations),
        np.asarray(data.actions),
        beta=config.beta,
        k=config.k,
        search=config.search,
        candidates=config.candidates,
        hnsw_m=config.hnsw_m,
        hnsw_ef_search=config.hnsw_ef_search,
        ivf_lists=config.ivf_lists,
        ivf_nprobe=config.ivf_nprobe,
        memory=config.memory,
    )


# Several datasets' constraints in one program (`offrl.grouped`): the `jax` search only.
stack_prepared = stack_constraints


def update_actor(
    state: State, batch: Transitions, constraint: DatasetConstraint, hood: Neighbourhood
) -> tuple[State, dict]:
    """The dataset-constrained actor step, then polyak updates of target actor and target critic."""
    policy_actions = act(state, batch.observations)
    targets, search_metrics = neighbour_actions(constraint, hood, policy_actions)

    def loss_fn(actor_params):
        actions = state.actor.apply_fn(actor_params, batch.observations)
        q1 = first_member(state.critic, state.critic.params, batch.observations, actions)
        return normalized_q_bc_loss(q1, actions, targets, state.config.alpha)

    state, metrics = actor_step(state, loss_fn)
    return state, {**metrics, **search_metrics}


def update(
    state: State, batch: Transitions, key: jax.Array, context: Context
) -> tuple[State, dict]:
    """One PRDC iteration: TD3+BC's critic step, then (every `policy_freq`-th) the actor step.

    `context.prepared` is the dataset constraint `prepare` built; `context.rows` are the dataset
    rows of `batch`, from which the query's state part is read.
    """
    constraint = context.prepared
    # Gathered here, outside the delayed actor step's lax.cond (see `Neighbourhood`).
    hood = gather_neighbourhood(constraint, context.rows)

    def constrained_actor_step(state: State, batch: Transitions) -> tuple[State, dict]:
        return update_actor(state, batch, constraint, hood)

    return td3_update(update_critic, constrained_actor_step, state, batch, key)
