"""A2PR (Liu et al., ICML 2024), as the official code `ltlhuuu/A2PR` computes it.

TD3+BC whose behaviour-cloning target is chosen by advantage (docs/algorithms.md §4). One
iteration, in the code's order:

1. Critic: TD3's clipped double-Q update (target actor, smoothing noise, target-critic minimum).
2. Value: V(s) regressed by plain MSE onto min(y_cur, y_tgt), where y_tgt is the critic's target and
   y_cur the same Bellman target through the freshly updated online critic.
3. VAE ("augmented behaviour policy"): ELBO whose reconstruction term counts only the rows with
   Q1(s, a) > V(s), plus 0.5 x KL.
4. Actor, every `policy_freq` steps: -lambda Q1(s, pi) + mask-weighted MSE from pi to the better of
   {VAE reconstruction of pi, dataset action} by advantage; then polyak updates of both targets.

Steps 3 and 4 use V(s) computed *before* step 2 moved V, as the official code reuses that tensor.

Where the official code is more specific than (or differs from) the paper's prose, this file
follows the code (docs/algorithms.md §4.2):
- the paper filters the VAE's data by 1(A(s, a) > eps_A); the code's threshold is 0 (strict ">");
- V is fitted by plain MSE to min(y_cur, y_tgt): the expectile-0.8 loss of the official Value
  class is never called, so V is a pessimistic value of the learned policy, not of the data's;
- the BC weight is mask where either candidate beats V and 0 where neither does, ">=" for the VAE
  action and ">" for the dataset action: the code adds the two conditions as bool tensors, which
  in PyTorch is a logical OR, so a row where both beat V still weighs mask, never 2 x mask; ties in
  the advantage comparison go to the VAE action;
- the VAE reconstruction of pi(s) is not detached, so the BC gradient also reaches the actor
  through the VAE (whose parameters only the VAE step changes).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from offrl.agent import Context, DatasetSpec, no_preparation, require
from offrl.data.transitions import Transitions
from offrl.nets import MLP, VAE, CriticEnsemble, DeterministicActor
from offrl.td3 import (
    TargetTrainState,
    TD3Config,
    actor_step,
    bellman_target,
    clipped_double_q_target,
    create_model,
    first_member,
    normalized_q_bc_loss,
    smoothed_target_actions,
    td3_update,
    twin_mse_loss,
)

# Bumped whenever `update` changes what it computes. 2: the BC weight is mask x OR, not a sum.
BEHAVIOR_VERSION = 2


@dataclasses.dataclass(frozen=True)
class Config(TD3Config):
    """The official defaults (`utils/config.py`, the networks of `A2PR.py`; docs/algorithms.md §4).

    Per-task values, from the official README's example commands (docs/algorithms.md §4.3):
      - halfcheetah-medium-v2: alpha 40.0, vae_weight 1.0, mask 1.0, discount 0.99
      - hopper-medium-v2:      alpha 2.5,  vae_weight 1.0, mask 0.4, discount 0.995
      - walker2d-medium-v2:    alpha 2.5,  vae_weight 1.5, mask 1.0, discount 0.99
    Every other dataset (random, medium-replay, medium-expert, expert, antmaze, maze2d) has no
    official value in the repository: use these defaults. (The A2PR class's own keyword default
    is mask=1.0, but the CLI always passes its default 0.5, so 0.5 is the effective default.)
    """

    vae_weight: float = 1.0
    """Weight of the advantage-filtered reconstruction term of the VAE loss."""
    mask: float = 0.5
    """BC weight of a row where either candidate action beats V(s); 0 where neither does."""
    value_lr: float = 3e-4
    """Adam learning rate of the value network (fixed at 3e-4 in the official code)."""
    vae_lr: float = 1e-3
    """Adam learning rate of the VAE (PyTorch's Adam default, the official code sets none)."""
    hidden_dims: tuple[int, ...] = (256, 256, 256)
    """Hidden layer widths of the actor (ReLU)."""
    critic_hidden_dims: tuple[int, ...] = (256, 256, 256, 256)
    """Hidden layer widths of each twin critic and of the value network (ReLU)."""
    vae_hidden_dims: tuple[int, ...] = (750, 750)
    """Hidden layer widths of the VAE encoder and, separately, of its decoder (ReLU)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.vae_weight >= 0, f"vae_weight must be >= 0, got {self.vae_weight}")
        require(self.mask >= 0, f"mask must be >= 0, got {self.mask}")
        for name in ("critic_hidden_dims", "vae_hidden_dims"):
            dims = getattr(self, name)
            require(len(dims) > 0 and min(dims) >= 1, f"{name} must be positive widths, got {dims}")


# The official README's example commands, one per environment, applied to all of its datasets
# (the sources give no values for random / medium-replay / medium-expert / expert, antmaze or
# maze2d, which keep the Config defaults; docs/algorithms.md §4.3).
OFFICIAL: dict[str, dict[str, float]] = {
    "halfcheetah": {"alpha": 40.0, "vae_weight": 1.0, "mask": 1.0, "discount": 0.99},
    "hopper": {"alpha": 2.5, "vae_weight": 1.0, "mask": 0.4, "discount": 0.995},
    "walker2d": {"alpha": 2.5, "vae_weight": 1.5, "mask": 1.0, "discount": 0.99},
}


@flax.struct.dataclass
class State:
    actor: TargetTrainState
    critic: TargetTrainState
    value: TrainState
    vae: TrainState
    value_params_before: Any
    """V's parameters before the latest value step: the actor step evaluates V(s) with them."""
    rng: jax.Array
    """The actor step's own PRNG stream (the VAE's z for pi(s)), so update_actor needs no key."""
    step: jax.Array
    config: Config = flax.struct.field(pytree_node=False)
    max_action: float = flax.struct.field(pytree_node=False, default=1.0)


def create_plain(key: jax.Array, module, sample_inputs: tuple, learning_rate: float) -> TrainState:
    """A network and its Adam optimiser, without a target copy (value network and VAE)."""
    return TrainState.create(
        apply_fn=module.apply, params=module.init(key, *sample_inputs), tx=optax.adam(learning_rate)
    )


def init(key: jax.Array, spec: DatasetSpec, config: Config) -> State:
    actor_key, critic_key, value_key, vae_key, rng = jax.random.split(key, 5)
    observations = jnp.zeros((1, spec.obs_dim))
    actions = jnp.zeros((1, spec.action_dim))
    actor_net = DeterministicActor(config.hidden_dims, spec.action_dim, spec.max_action)
    critic_net = CriticEnsemble(config.critic_hidden_dims, 2, layer_norm=config.critic_layer_norm)
    vae_net = VAE(config.vae_hidden_dims, spec.action_dim, 2 * spec.action_dim, spec.max_action)
    value = create_plain(
        value_key, MLP(config.critic_hidden_dims, 1), (observations,), config.value_lr
    )
    return State(
        actor=create_model(actor_key, actor_net, (observations,), config.actor_lr),
        critic=create_model(critic_key, critic_net, (observations, actions), config.critic_lr),
        value=value,
        vae=create_plain(vae_key, vae_net, (observations, actions, vae_key), config.vae_lr),
        # A copy, not an alias (see create_model): the state is donated to the jitted loop.
        value_params_before=jax.tree.map(jnp.copy, value.params),
        rng=rng,
        step=jnp.zeros((), jnp.int32),
        config=config,
        max_action=spec.max_action,
    )


def state_value(value: TrainState, params, observations: jax.Array) -> jax.Array:
    """V(s), shape (batch,)."""
    return value.apply_fn(params, observations)[..., 0]


def q1(state: State, observations: jax.Array, actions: jax.Array) -> jax.Array:
    """Q1(s, a) of the online critic (A2PR's advantages and actor use the first member only)."""
    return first_member(state.critic, state.critic.params, observations, actions)


def vae_loss(params, vae: TrainState, batch: Transitions, positive, key, vae_weight: float):
    """ELBO with the reconstruction counted only on `positive` rows, plus 0.5 x KL.

    Both terms average over batch and dimensions, masked rows included in the count, as
    `(weight_emb * torch.square(recon - action)).mean()` does.
    """
    recon, mean, log_std = vae.apply_fn(params, batch.observations, batch.actions, key)
    recon_loss = (vae_weight * positive[:, None] * (recon - batch.actions) ** 2).mean()
    kl = -0.5 * (1.0 + 2.0 * log_std - mean**2 - jnp.exp(2.0 * log_std)).mean()
    loss = recon_loss + 0.5 * kl
    return loss, {"vae_loss": loss, "recon_loss": recon_loss, "kl_loss": kl}


def advantage_guided_target(recon_pi, actions, q_recon, q_data, v, mask: float):
    """The BC target and per-row weight of A2PR's actor loss.

    Target: the VAE reconstruction of pi(s) if A(s, recon) >= A(s, a) (ties go to the VAE
    action), else the dataset action. Weight: mask where Q1(s, recon) >= V(s) or Q1(s, a) > V(s),
    else 0. The official `mask * (adv_pi + adv_action)` adds two bool tensors, a logical OR in
    PyTorch, so a row where both candidates beat V weighs mask, not 2 x mask. Both advantages
    share V(s), so the selection is Q1(s, recon) >= Q1(s, a); the weights are constants.
    """
    use_vae = (q_recon - v) >= (q_data - v)
    target = jnp.where(use_vae[:, None], recon_pi, actions)
    weight = mask * ((q_recon >= v) | (q_data > v)).astype(v.dtype)
    return target, jax.lax.stop_gradient(weight), use_vae


def update_critic(state: State, batch: Transitions, key: jax.Array) -> tuple[State, dict]:
    """Everything done every step: the TD3 critic, then the value network, then the VAE."""
    c, max_action = state.config, state.max_action
    noise_key, vae_key = jax.random.split(key)

    # 1. Critic: exactly TD3, y_tgt = r + gamma (1 - d) min_j Q'_j(s', a'~) through the targets.
    next_actions = smoothed_target_actions(
        state.actor,
        batch.next_observations,
        noise_key,
        c.policy_noise * max_action,
        c.noise_clip * max_action,
        max_action,
    )
    target_q = clipped_double_q_target(state.critic, batch, next_actions, c.discount)
    grads, critic_metrics = jax.grad(twin_mse_loss, has_aux=True)(
        state.critic.params, state.critic, batch, target_q
    )
    critic = state.critic.apply_gradients(grads=grads)

    # 2. Value: y_cur is the same target through the freshly updated *online* critic (same a'~);
    # V is regressed by plain MSE onto min(y_cur, y_tgt). The expectile-0.8 loss defined in the
    # official Value class is never called. So V is a pessimistic value of the current policy
    # (from its target actor), not of the behaviour policy.
    next_q = critic.apply_fn(critic.params, batch.next_observations, next_actions).min(axis=0)
    value_target = jnp.minimum(
        bellman_target(batch.rewards, batch.dones, next_q, c.discount), target_q
    )

    def value_loss_fn(params):
        v = state_value(state.value, params, batch.observations)
        return ((v - value_target) ** 2).mean(), v

    (value_loss, v), grads = jax.value_and_grad(value_loss_fn, has_aux=True)(state.value.params)
    value = state.value.apply_gradients(grads=grads)
    # V(s) before this value step: the VAE below and the actor (via value_params_before) use it.
    v = jax.lax.stop_gradient(v)

    # 3. VAE on the dataset actions whose advantage Q1(s, a) - V(s) (updated critic) is > 0.
    # The paper writes the filter as 1(A(s, a) > eps_A); the code's threshold is 0 (strict >).
    q_data = first_member(critic, critic.params, batch.observations, batch.actions)
    positive = q_data > v
    grads, vae_metrics = jax.grad(vae_loss, has_aux=True)(
        state.vae.params, state.vae, batch, positive, vae_key, c.vae_weight
    )
    vae = state.vae.apply_gradients(grads=grads)

    metrics = {
        **critic_metrics,
        "value_loss": value_loss,
        "v_mean": v.mean(),
        **vae_metrics,
        "positive_fraction": positive.mean(),
    }
    state = state.replace(
        critic=critic, value=value, vae=vae, value_params_before=state.value.params
    )
    return state, metrics


def actor_loss(actor_params, state: State, batch: Transitions, key: jax.Array):
    """-lambda Q1(s, pi) + mean_{b, dims}[w (pi - target)^2], differentiated w.r.t. the actor only.

    V(s) is the value before this iteration's value step; Q1 is the updated online critic.
    """
    c = state.config
    v = state_value(state.value, state.value_params_before, batch.observations)
    q_data = q1(state, batch.observations, batch.actions)
    pi = state.actor.apply_fn(actor_params, batch.observations)
    q_pi = q1(state, batch.observations, pi)
    # The augmented behaviour action: pi(s) through the VAE, z ~ Enc(s, pi) reparameterised and
    # unclipped (the clipped prior sample of the decoder is never used in training). It is NOT
    # detached: the BC gradient also flows through the VAE (encoder input pi) into the actor.
    recon_pi, _, _ = state.vae.apply_fn(state.vae.params, batch.observations, pi, key)
    q_recon = q1(state, batch.observations, jax.lax.stop_gradient(recon_pi))
    target, weight, use_vae = advantage_guided_target(
        recon_pi, batch.actions, q_recon, q_data, v, c.mask
    )
    # mean(w (pi - target)^2) is TD3+BC's MSE of sqrt(w)-scaled actions, so the shared loss
    # (lambda = alpha / mean|Q1| held constant) applies unchanged.
    root = jnp.sqrt(weight)[:, None]
    loss, metrics = normalized_q_bc_loss(q_pi, root * pi, root * target, c.alpha)
    return loss, {**metrics, "bc_weight": weight.mean(), "vae_target_fraction": use_vae.mean()}


def update_actor(state: State, batch: Transitions) -> tuple[State, dict]:
    """The advantage-guided actor step, then polyak updates of target actor and target critic.

    Only the actor moves: critic, value and VAE parameters are held fixed in its gradient. The
    step's one random draw (the VAE's z for pi(s)) comes from the agent's own `state.rng`.
    """
    rng, key = jax.random.split(state.rng)
    state, metrics = actor_step(state, lambda params: actor_loss(params, state, batch, key))
    return state.replace(rng=rng), metrics


prepare = no_preparation


def update(
    state: State, batch: Transitions, key: jax.Array, context: Context
) -> tuple[State, dict]:
    """One A2PR iteration: critic, value and VAE steps, then (every `policy_freq`-th) the actor.

    A2PR learns from the batch alone: `context` is not used.
    """
    return td3_update(update_critic, update_actor, state, batch, key)


def act(state: State, observations: jax.Array) -> jax.Array:
    """The deterministic policy pi(s) on (already normalised) observations."""
    return state.actor.apply_fn(state.actor.params, observations)
