"""Soft actor-critic (Haarnoja et al. 2018, with automatic temperature), the algorithm D4RL
trained its behaviour policies with. Same contract as the offline agents: Config, init, update,
act, plus `explore` for the stochastic policy used while collecting.
"""

from __future__ import annotations

import dataclasses

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from offrl.agent import DatasetSpec, require
from offrl.data.transitions import Transitions
from offrl.nets import CriticEnsemble, TanhGaussianActor, tanh_gaussian_sample
from offrl.td3 import TargetTrainState, bellman_target, create_model, polyak, twin_mse_loss


@dataclasses.dataclass(frozen=True)
class Config:
    """SAC defaults as in the SAC paper and rlkit (D4RL's trainer)."""

    hidden_dims: tuple[int, ...] = (256, 256)
    """Hidden widths of actor and twin critics."""
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    temperature_lr: float = 3e-4
    discount: float = 0.99
    tau: float = 0.005
    batch_size: int = 256
    initial_temperature: float = 1.0
    target_entropy_scale: float = 1.0
    """Target entropy = -scale * action_dim."""

    def __post_init__(self) -> None:
        require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        require(0.0 < self.tau <= 1.0, f"tau must be in (0, 1], got {self.tau}")
        require(0.0 <= self.discount <= 1.0, f"discount must be in [0, 1], got {self.discount}")


@flax.struct.dataclass
class State:
    actor: TrainState
    critic: TargetTrainState
    log_temperature: TrainState
    step: jax.Array
    config: Config = flax.struct.field(pytree_node=False)
    target_entropy: float = flax.struct.field(pytree_node=False, default=0.0)


def init(key: jax.Array, spec: DatasetSpec, config: Config) -> State:
    actor_key, critic_key = jax.random.split(key)
    observations = jnp.zeros((1, spec.obs_dim))
    actions = jnp.zeros((1, spec.action_dim))
    actor_net = TanhGaussianActor(config.hidden_dims, spec.action_dim)
    actor = TrainState.create(
        apply_fn=actor_net.apply,
        params=actor_net.init(actor_key, observations),
        tx=optax.adam(config.actor_lr),
    )
    critic_net = CriticEnsemble(config.hidden_dims, num_members=2)
    temperature = TrainState.create(
        apply_fn=None,
        params={"log_temperature": jnp.log(jnp.asarray(config.initial_temperature, jnp.float32))},
        tx=optax.adam(config.temperature_lr),
    )
    return State(
        actor=actor,
        critic=create_model(critic_key, critic_net, (observations, actions), config.critic_lr),
        log_temperature=temperature,
        step=jnp.zeros((), jnp.int32),
        config=config,
        target_entropy=-config.target_entropy_scale * spec.action_dim,
    )


def explore(actor_params, apply_fn, observations: jax.Array, key: jax.Array) -> jax.Array:
    """A sample of the stochastic policy (the behaviour while training)."""
    mean, log_std = apply_fn(actor_params, observations)
    return tanh_gaussian_sample(mean, log_std, key)[0]


def update_critic(state: State, batch: Transitions, key: jax.Array) -> tuple[State, dict]:
    temperature = jnp.exp(state.log_temperature.params["log_temperature"])
    mean, log_std = state.actor.apply_fn(state.actor.params, batch.next_observations)
    next_actions, next_log_prob = tanh_gaussian_sample(mean, log_std, key)
    next_q = state.critic.apply_fn(
        state.critic.target_params, batch.next_observations, next_actions
    ).min(axis=0)
    soft_next_q = next_q - temperature * next_log_prob
    targets = bellman_target(batch.rewards, batch.dones, soft_next_q, state.config.discount)
    grads, metrics = jax.grad(twin_mse_loss, has_aux=True)(
        state.critic.params, state.critic, batch, targets
    )
    critic = polyak(state.critic.apply_gradients(grads=grads), state.config.tau)
    return state.replace(critic=critic), metrics


def update_actor_and_temperature(
    state: State, batch: Transitions, key: jax.Array
) -> tuple[State, dict]:
    temperature = jnp.exp(state.log_temperature.params["log_temperature"])

    def actor_loss(actor_params):
        mean, log_std = state.actor.apply_fn(actor_params, batch.observations)
        actions, log_prob = tanh_gaussian_sample(mean, log_std, key)
        q = state.critic.apply_fn(state.critic.params, batch.observations, actions).min(axis=0)
        loss = (temperature * log_prob - q).mean()
        return loss, {"actor_loss": loss, "entropy": -log_prob.mean()}

    grads, metrics = jax.grad(actor_loss, has_aux=True)(state.actor.params)
    actor = state.actor.apply_gradients(grads=grads)
    entropy = jax.lax.stop_gradient(metrics["entropy"])

    def temperature_loss(params):
        return jnp.exp(params["log_temperature"]) * (entropy - state.target_entropy)

    temperature_grad = jax.grad(temperature_loss)(state.log_temperature.params)
    log_temperature = state.log_temperature.apply_gradients(grads=temperature_grad)
    metrics = {**metrics, "temperature": temperature}
    return state.replace(actor=actor, log_temperature=log_temperature), metrics


def update(state: State, batch: Transitions, key: jax.Array) -> tuple[State, dict]:
    """Critic (soft clipped double-Q target) then actor and temperature, targets every step."""
    critic_key, actor_key = jax.random.split(key)
    state, critic_metrics = update_critic(state, batch, critic_key)
    state, actor_metrics = update_actor_and_temperature(state, batch, actor_key)
    return state.replace(step=state.step + 1), {**critic_metrics, **actor_metrics}


def act(state: State, observations: jax.Array) -> jax.Array:
    """The deterministic policy tanh(mean), used for evaluation."""
    return jnp.tanh(state.actor.apply_fn(state.actor.params, observations)[0])
