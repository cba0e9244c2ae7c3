"""L1 behaviour cloning: a deterministic policy regressed onto the dataset's actions under an L1
loss. The example of docs/writing-an-agent.md; `offrl train --agent mypkg.l1bc` trains it."""

from __future__ import annotations

import dataclasses

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from offrl.agent import BaseConfig, Context, DatasetSpec, require
from offrl.data.transitions import Transitions
from offrl.nets import DeterministicActor

# Bump whenever `update` changes what it computes: runs of other versions are never mixed.
BEHAVIOR_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """BaseConfig's data fields (batch size, normalisation, reward transform) and BC's own."""

    actor_lr: float = 1e-3
    """Adam learning rate of the policy."""
    hidden_dims: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the policy."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(min(self.hidden_dims, default=0) >= 1, f"bad hidden_dims {self.hidden_dims}")


@flax.struct.dataclass
class State:
    actor: TrainState


def init(key: jax.Array, spec: DatasetSpec, config: Config) -> State:
    network = DeterministicActor(config.hidden_dims, spec.action_dim, spec.max_action)
    params = network.init(key, jnp.zeros((1, spec.obs_dim)))
    optimizer = optax.adam(config.actor_lr)
    return State(actor=TrainState.create(apply_fn=network.apply, params=params, tx=optimizer))


def update(
    state: State, batch: Transitions, key: jax.Array, context: Context
) -> tuple[State, dict]:
    """One gradient step on mean |pi(s) - a|; plain BC needs neither `key` nor `context`."""

    def loss_fn(params):
        actions = state.actor.apply_fn(params, batch.observations)
        return jnp.abs(actions - batch.actions).mean()

    loss, grads = jax.value_and_grad(loss_fn)(state.actor.params)
    return State(actor=state.actor.apply_gradients(grads=grads)), {"bc_loss": loss}


def act(state: State, observations: jax.Array) -> jax.Array:
    """The deterministic policy pi(s) on (already normalised) observations."""
    return state.actor.apply_fn(state.actor.params, observations)
