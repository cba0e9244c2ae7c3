"""TD3 machinery that TD3+BC, PRDC, A2PR and GGD-TD share: one definition, called by each agent."""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from offrl.agent import BaseConfig, require


class TargetTrainState(TrainState):
    """A flax TrainState with a slowly tracking copy of its parameters, and its module."""

    target_params: Any = None
    module: nn.Module | None = flax.struct.field(pytree_node=False, default=None)


@dataclasses.dataclass(frozen=True)
class TD3Config(BaseConfig):
    """Hyper-parameters every TD3-based agent shares, with TD3+BC's official defaults."""

    alpha: float = 2.5
    """Weight of the normalised Q term; lambda = alpha / mean|Q1(s, pi(s))|."""
    actor_lr: float = 3e-4
    """Adam learning rate of the actor."""
    critic_lr: float = 3e-4
    """Adam learning rate of the critics."""
    hidden_dims: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the actor (and of the critics unless the agent says otherwise)."""
    critic_layer_norm: bool = False
    """LayerNorm before every hidden ReLU of the critics: not in the papers (False keeps them),
    a common change for research on critic stability."""
    discount: float = 0.99
    """Discount factor gamma."""
    tau: float = 0.005
    """Polyak rate of the target networks."""
    policy_noise: float = 0.2
    """Std of the target-smoothing noise, times max_action."""
    noise_clip: float = 0.5
    """Clip of the target-smoothing noise, times max_action."""
    policy_freq: int = 2
    """Actor and target networks move every `policy_freq` critic steps."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(0.0 <= self.discount <= 1.0, f"discount must be in [0, 1], got {self.discount}")
        require(0.0 < self.tau <= 1.0, f"tau must be in (0, 1], got {self.tau}")
        require(self.policy_freq >= 1, f"policy_freq must be >= 1, got {self.policy_freq}")
        require(self.alpha >= 0, f"alpha must be >= 0, got {self.alpha}")
        require(self.policy_noise >= 0 and self.noise_clip >= 0, "policy noise must be >= 0")
        require(
            len(self.hidden_dims) > 0 and min(self.hidden_dims) >= 1,
            f"hidden_dims must be positive widths, got {self.hidden_dims}",
        )


def create_model(key, module, sample_inputs: tuple, learning_rate: float) -> TargetTrainState:
    """Initialise `module`, its Adam optimiser (PyTorch defaults) and its target copy."""
    params = module.init(key, *sample_inputs)
    # A copy, not an alias: donating the state to a jitted call must not donate one buffer twice.
    target_params = jax.tree.map(jnp.copy, params)
    return TargetTrainState.create(
        apply_fn=module.apply,
        params=params,
        target_params=target_params,
        tx=optax.adam(learning_rate),
        module=module,
    )


def polyak(model: TargetTrainState, tau: float) -> TargetTrainState:
    """theta' <- tau * theta + (1 - tau) * theta'."""
    target = optax.incremental_update(model.params, model.target_params, tau)
    return model.replace(target_params=target)


def smoothed_target_actions(
    actor: TargetTrainState,
    next_observations: jax.Array,
    key: jax.Array,
    policy_noise: float,
    noise_clip: float,
    max_action: float,
) -> jax.Array:
    """Target policy smoothing: clip(pi'(s') + clip(eps, -c, c), -max_a, max_a), eps ~ N(0, s^2)."""
    next_actions = actor.apply_fn(actor.target_params, next_observations)
    noise = jax.random.normal(key, next_actions.shape) * policy_noise
    noise = jnp.clip(noise, -noise_clip, noise_clip)
    return jnp.clip(next_actions + noise, -max_action, max_action)


def bellman_target(rewards, dones, next_q, discount: float) -> jax.Array:
    """y = r + gamma (1 - done) Q'(s', a'), held constant in the critic gradient."""
    return jax.lax.stop_gradient(rewards + discount * (1.0 - dones) * next_q)


def clipped_double_q_target(critic: TargetTrainState, batch, next_actions, discount: float):
    """TD3's target with the minimum over the twin target critics (member axis 0)."""
    next_q = critic.apply_fn(critic.target_params, batch.next_observations, next_actions)
    return bellman_target(batch.rewards, batch.dones, next_q.min(axis=0), discount)


def twin_mse_loss(critic_params, critic: TargetTrainState, batch, targets: jax.Array):
    """sum over members of mean_b (Q_j(s, a) - y)^2, as the official code adds both MSEs."""
    q = critic.apply_fn(critic_params, batch.observations, batch.actions)
    loss = ((q - targets) ** 2).mean(axis=1).sum()
    return loss, {"critic_loss": loss, "q_mean": q.mean()}


def normalized_q_bc_loss(q: jax.Array, actions: jax.Array, bc_targets: jax.Array, alpha: float):
    """TD3+BC's actor loss: -lambda mean Q + mean over batch and action dims of (pi(s) - a*)^2.

    lambda = alpha / mean|Q| is a constant in the gradient; PRDC and A2PR change only a*.
    """
    lmbda = jax.lax.stop_gradient(alpha / jnp.abs(q).mean())
    bc = ((actions - bc_targets) ** 2).mean()
    loss = -lmbda * q.mean() + bc
    return loss, {"actor_loss": loss, "bc_loss": bc, "lambda": lmbda}


def leading_members(critic: TargetTrainState, params, count: int, observations, actions):
    """The first `count` members of a `CriticEnsemble` alone, the others not evaluated: the same
    module with `num_members=count` on every parameter's first `count` entries (member axis 0)."""
    members = jax.tree.map(lambda p: p[:count], params)
    return critic.module.clone(num_members=count).apply(members, observations, actions)


def first_member(critic: TargetTrainState, params, observations, actions) -> jax.Array:
    """Q_1(s, a) alone: TD3+BC's actor needs only the first critic."""
    return leading_members(critic, params, 1, observations, actions)[0]


def actor_step(state, loss_fn) -> tuple[Any, dict]:
    """The actor's gradient step on `loss_fn(actor_params) -> (loss, metrics)`, then the polyak
    updates of target actor and target critic: the end of every TD3-family actor step."""
    grads, metrics = jax.grad(loss_fn, has_aux=True)(state.actor.params)
    actor = state.actor.apply_gradients(grads=grads)
    tau = state.config.tau
    return state.replace(actor=polyak(actor, tau), critic=polyak(state.critic, tau)), metrics


def delayed(should_update: jax.Array, update_fn, state):
    """Run `update_fn(state) -> (state, metrics)` only when `should_update`, as a real branch.

    Skipped steps keep the state and report NaN metrics, which the loop averages away (nanmean).
    """
    metric_shapes = jax.eval_shape(update_fn, state)[1]

    def skip(state):
        return state, jax.tree.map(lambda m: jnp.full(m.shape, jnp.nan, m.dtype), metric_shapes)

    return jax.lax.cond(should_update, update_fn, skip, state)


def td3_update(update_critic, update_actor, state, batch, key) -> tuple[Any, dict]:
    """One TD3-style iteration: the every-step part, then (every `policy_freq`-th) the delayed one.

    `update_critic(state, batch, key)` and `update_actor(state, batch)` return (state, metrics).
    """
    state, critic_metrics = update_critic(state, batch, key)
    step = state.step + 1
    is_actor_step = step % state.config.policy_freq == 0
    state, actor_metrics = delayed(is_actor_step, lambda s: update_actor(s, batch), state)
    return state.replace(step=step), {**critic_metrics, **actor_metrics}
