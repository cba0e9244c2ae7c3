"""TD3+BC (Fujimoto & Gu, NeurIPS 2021), faithful to the official code `sfujim/TD3_BC`.

Critic: clipped double Q with target policy smoothing, every step.
Actor, every `policy_freq` steps:  L = -lambda mean Q1(s, pi(s)) + mean (pi(s) - a)^2,
with lambda = alpha / mean|Q1(s, pi(s))| held constant; then polyak updates of both targets.
"""

from __future__ import annotations

import dataclasses

import flax.struct
import jax
import jax.numpy as jnp

from offrl.agent import Context, DatasetSpec, no_preparation
from offrl.data.transitions import Transitions
from offrl.nets import CriticEnsemble, DeterministicActor
from offrl.td3 import (
    TargetTrainState,
    TD3Config,
    actor_step,
    clipped_double_q_target,
    create_model,
    first_member,
    normalized_q_bc_loss,
    smoothed_target_actions,
    td3_update,
    twin_mse_loss,
)

# Bumped whenever `update` changes what it computes: runs of other versions are never mixed.
BEHAVIOR_VERSION = 1

# TD3+BC's paper and code use one configuration, the Config defaults, for every task.
OFFICIAL: dict[str, dict[str, float]] = {}


@dataclasses.dataclass(frozen=True)
class Config(TD3Config):
    """The official defaults (docs/algorithms.md §2.1), all in TD3Config."""


@flax.struct.dataclass
class State:
    actor: TargetTrainState
    critic: TargetTrainState
    step: jax.Array
    config: Config = flax.struct.field(pytree_node=False)
    max_action: float = flax.struct.field(pytree_node=False, default=1.0)


def init(key: jax.Array, spec: DatasetSpec, config: Config) -> State:
    actor_key, critic_key = jax.random.split(key)
    observations = jnp.zeros((1, spec.obs_dim))
    actions = jnp.zeros((1, spec.action_dim))
    actor_net = DeterministicActor(config.hidden_dims, spec.action_dim, spec.max_action)
    critic_net = CriticEnsemble(config.hidden_dims, 2, layer_norm=config.critic_layer_norm)
    return State(
        actor=create_model(actor_key, actor_net, (observations,), config.actor_lr),
        critic=create_model(critic_key, critic_net, (observations, actions), config.critic_lr),
        step=jnp.zeros((), jnp.int32),
        config=config,
        max_action=spec.max_action,
    )


def update_critic(state: State, batch: Transitions, key: jax.Array) -> tuple[State, dict]:
    c, max_action = state.config, state.max_action
    next_actions = smoothed_target_actions(
        state.actor,
        batch.next_observations,
        key,
        c.policy_noise * max_action,
        c.noise_clip * max_action,
        max_action,
    )
    targets = clipped_double_q_target(state.critic, batch, next_actions, c.discount)
    grads, metrics = jax.grad(twin_mse_loss, has_aux=True)(
        state.critic.params, state.critic, batch, targets
    )
    return state.replace(critic=state.critic.apply_gradients(grads=grads)), metrics


def update_actor(state: State, batch: Transitions) -> tuple[State, dict]:
    """The BC-regularised actor step, then polyak updates of target actor and target critic."""

    def loss_fn(actor_params):
        actions = state.actor.apply_fn(actor_params, batch.observations)
        q1 = first_member(state.critic, state.critic.params, batch.observations, actions)
        return normalized_q_bc_loss(q1, actions, batch.actions, state.config.alpha)

    return actor_step(state, loss_fn)


prepare = no_preparation


def update(
    state: State, batch: Transitions, key: jax.Array, context: Context
) -> tuple[State, dict]:
    """One TD3+BC iteration: critic step, then (every `policy_freq`-th) actor and target step.

    TD3+BC learns from the batch alone: `context` is not used.
    """
    return td3_update(update_critic, update_actor, state, batch, key)


def act(state: State, observations: jax.Array) -> jax.Array:
    """The deterministic policy pi(s) on (already normalised) observations."""
    return state.actor.apply_fn(state.actor.params, observations)
