"""GGD-TD offline: TD3+BC whose critics model the TD error as a generalised Gaussian.

NOT a reproduction of a published offline result. The GGD-TD paper (Kim et al., arXiv 2408.02295)
and its official code (`ait-lab/ggtde`) are online only (SAC, PPO, DQN); neither has offline or
D4RL experiments. This agent is offrl's own offline variant (docs/algorithms.md §5.5): TD3+BC
with its twin critics replaced by two ensembles of N members with the GGD loss (§5.2-5.4).

Critic, every step (two ensembles c = 1, 2 of N members, each member outputs (Q, raw beta)):
  y_i = r + gamma (1 - done) min_c Q'_{c,i}(s', a~')     per member, TD3 target smoothing for a~'
  delta_{c,i} = Q_{c,i}(s, a) - y_i,  beta = softplus(raw) with a floor and cap (offrl.ggd)
  L = sum_c [ mean_b sum_i omega_{c,i} nll(delta_{c,i}; beta_{c,i})
              + lambda_u mean_b sum_i w_{c,b} |delta_{c,i,b}| ]
with omega = beta normalised over members (not detached) and w the BIEV batch weights (inverse
MBBE-corrected TD-error variance across members, effective batch size >= min(B - 1, 16), held
constant). `loss_form` picks the paper's nll (|delta|^beta, alpha = 1) or the released code's
(beta |delta|).
Actor, every `policy_freq` steps, exactly TD3+BC with Q = the mean over the N members of
ensemble 1 (optionally mean - k std, `pessimism`); then polyak updates of both targets.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import flax.struct
import jax
import jax.numpy as jnp

from offrl import ggd
from offrl.agent import Context, DatasetSpec, no_preparation, require
from offrl.data.transitions import Transitions
from offrl.nets import CriticEnsemble, DeterministicActor
from offrl.td3 import (
    TargetTrainState,
    TD3Config,
    actor_step,
    bellman_target,
    create_model,
    leading_members,
    normalized_q_bc_loss,
    smoothed_target_actions,
    td3_update,
)

NUM_CRITICS = 2
"""Twin ensembles, as TD3's (and GGD-SAC's) twin critics."""


# Bumped whenever `update` changes what it computes: runs of other versions are never mixed.
BEHAVIOR_VERSION = 1

# offrl's own offline variant: one configuration, the Config defaults, for every task.
OFFICIAL: dict[str, dict[str, float]] = {}


@dataclasses.dataclass(frozen=True)
class Config(TD3Config):
    """TD3+BC's official defaults (docs/algorithms.md §2.1) plus the GGD-TD critic (5.3-5.5)."""

    ensemble_size: int = 5
    """Members N of each of the two critic ensembles (the official `ensemble_size`)."""
    loss_form: Literal["paper", "code"] = "paper"
    """GGD nll: "paper" |delta|^beta (alpha = 1), "code" beta |delta| as the released code."""
    uncertainty_weight: float = 0.1
    """lambda_u, weight of the BIEV absolute-error term (the official `uncertainty_temperature`)."""
    min_batch_size: int = 16
    """BIEV weights keep an effective batch size >= min(batch_size - 1, min_batch_size)."""
    pessimism: float = 0.0
    """k in the actor's Q = mean_i Q_i - k std_i Q_i over ensemble 1; 0 = the plain mean (not
    from the paper)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(
            self.ensemble_size >= 2,
            f"ensemble_size must be >= 2 (a TD-error variance across members), "
            f"got {self.ensemble_size}",
        )
        require(
            self.loss_form in ("paper", "code"),
            f"loss_form must be 'paper' or 'code', got {self.loss_form!r}",
        )
        require(
            self.uncertainty_weight >= 0,
            f"uncertainty_weight must be >= 0, got {self.uncertainty_weight}",
        )
        require(self.min_batch_size >= 1, f"min_batch_size must be >= 1, got {self.min_batch_size}")
        require(self.pessimism >= 0, f"pessimism must be >= 0, got {self.pessimism}")


@flax.struct.dataclass
class State:
    actor: TargetTrainState
    critic: TargetTrainState
    """One CriticEnsemble of 2 N members, out_dim 2; member c N + i is member i of ensemble c."""
    step: jax.Array
    config: Config = flax.struct.field(pytree_node=False)
    max_action: float = flax.struct.field(pytree_node=False, default=1.0)


def init(key: jax.Array, spec: DatasetSpec, config: Config) -> State:
    actor_key, critic_key = jax.random.split(key)
    observations = jnp.zeros((1, spec.obs_dim))
    actions = jnp.zeros((1, spec.action_dim))
    actor_net = DeterministicActor(config.hidden_dims, spec.action_dim, spec.max_action)
    critic_net = CriticEnsemble(
        config.hidden_dims,
        num_members=NUM_CRITICS * config.ensemble_size,
        out_dim=2,
        layer_norm=config.critic_layer_norm,
    )
    return State(
        actor=create_model(actor_key, actor_net, (observations,), config.actor_lr),
        critic=create_model(critic_key, critic_net, (observations, actions), config.critic_lr),
        step=jnp.zeros((), jnp.int32),
        config=config,
        max_action=spec.max_action,
    )


def critic_outputs(critic: TargetTrainState, params, observations, actions):
    """(Q, beta), each of shape (2, N, B): ensemble, member, sample."""
    out = critic.apply_fn(params, observations, actions)
    out = out.reshape(NUM_CRITICS, -1, *out.shape[1:])
    return out[..., 0], ggd.beta_from_raw(out[..., 1])


def first_ensemble_q(state: State, params, observations, actions) -> jax.Array:
    """Q of ensemble 1 alone (N, B): the actor needs only these members, the rest is not run."""
    n = state.config.ensemble_size
    return leading_members(state.critic, params, n, observations, actions)[..., 0]


def critic_loss(critic_params, state: State, batch: Transitions, targets: jax.Array):
    """sum over both ensembles of GGD nll (shape-weighted) + lambda_u x BIEV absolute error."""
    c = state.config
    q, beta = critic_outputs(state.critic, critic_params, batch.observations, batch.actions)
    td_errors = q - targets  # (2, N, B); targets (N, B) broadcast over the ensembles
    nll = jax.vmap(lambda d, b: ggd.weighted_ggd_nll(d, b, c.loss_form))(td_errors, beta)
    weights, ebs, xi = jax.vmap(lambda d: ggd.biev_weights(d, c.min_batch_size))(td_errors)
    biev = jax.vmap(ggd.weighted_absolute_error)(td_errors, weights)
    loss = (nll + c.uncertainty_weight * biev).sum()
    beta = jax.lax.stop_gradient(beta)
    metrics = {
        "critic_loss": loss,
        "ggd_nll": nll.sum(),
        "biev_loss": biev.sum(),
        "q_mean": q.mean(),
        "beta_mean": beta.mean(),
        "beta_min": beta.min(),
        "beta_max": beta.max(),
        "aleatoric_variance": ggd.aleatoric_variance(beta).mean(),
        "effective_batch_size": ebs.mean(),
        "biev_xi": xi.mean(),
    }
    return loss, metrics


def member_targets(state: State, batch: Transitions, next_actions: jax.Array) -> jax.Array:
    """y_i = r + gamma (1 - done) min_c Q'_{c,i}(s', a'), shape (N, B): per member i, the minimum
    over the two target ensembles of their member i (the released GGD-SAC's target)."""
    next_q, _ = critic_outputs(
        state.critic, state.critic.target_params, batch.next_observations, next_actions
    )
    return bellman_target(batch.rewards, batch.dones, next_q.min(axis=0), state.config.discount)


def update_critic(state: State, batch: Transitions, key: jax.Array) -> tuple[State, dict]:
    """The GGD-TD critic step on per-member TD3 targets; runs every step."""
    c, max_action = state.config, state.max_action
    next_actions = smoothed_target_actions(
        state.actor,
        batch.next_observations,
        key,
        c.policy_noise * max_action,
        c.noise_clip * max_action,
        max_action,
    )
    targets = member_targets(state, batch, next_actions)
    grads, metrics = jax.grad(critic_loss, has_aux=True)(state.critic.params, state, batch, targets)
    return state.replace(critic=state.critic.apply_gradients(grads=grads)), metrics


def actor_loss(actor_params, state: State, batch: Transitions):
    """TD3+BC's loss with Q = mean_i Q_{1,i}(s, pi(s)) (minus `pessimism` x std_i)."""
    c = state.config
    actions = state.actor.apply_fn(actor_params, batch.observations)
    q = first_ensemble_q(state, state.critic.params, batch.observations, actions)
    q_actor = q.mean(axis=0)
    if c.pessimism > 0:
        # sqrt(var + 1e-12): finite gradient even where the members agree exactly.
        q_actor = q_actor - c.pessimism * jnp.sqrt(q.var(axis=0) + 1e-12)
    return normalized_q_bc_loss(q_actor, actions, batch.actions, c.alpha)


def update_actor(state: State, batch: Transitions) -> tuple[State, dict]:
    """The BC-regularised actor step on ensemble 1's mean Q, then polyak updates of both targets."""
    return actor_step(state, lambda params: actor_loss(params, state, batch))


prepare = no_preparation


def update(
    state: State, batch: Transitions, key: jax.Array, context: Context
) -> tuple[State, dict]:
    """One GGD-TD iteration: critic step, then (every `policy_freq`-th) actor and target step.

    GGD-TD learns from the batch alone: `context` is not used.
    """
    return td3_update(update_critic, update_actor, state, batch, key)


def act(state: State, observations: jax.Array) -> jax.Array:
    """The deterministic policy pi(s) on (already normalised) observations."""
    return state.actor.apply_fn(state.actor.params, observations)
