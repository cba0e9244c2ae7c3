"""TD3+BC update invariants against the official code's semantics (docs/algorithms.md §2)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import batch_context

from agents import TD3BC
from offrl.agent import DatasetSpec
from offrl.data.transitions import Transitions
from offrl.errors import ConfigError
from offrl.td3 import first_member

OBS, ACT, BATCH = 11, 3, 64


@pytest.fixture(scope="module")
def batch() -> Transitions:
    rng = np.random.default_rng(0)
    return Transitions(
        observations=jnp.asarray(rng.standard_normal((BATCH, OBS)), jnp.float32),
        actions=jnp.asarray(rng.uniform(-1, 1, (BATCH, ACT)), jnp.float32),
        rewards=jnp.asarray(rng.standard_normal(BATCH), jnp.float32),
        next_observations=jnp.asarray(rng.standard_normal((BATCH, OBS)), jnp.float32),
        dones=jnp.asarray(rng.uniform(size=BATCH) < 0.2, jnp.float32),
    )


@pytest.fixture(scope="module")
def state() -> TD3BC.State:
    return TD3BC.init(jax.random.PRNGKey(0), DatasetSpec(OBS, ACT), TD3BC.Config(batch_size=BATCH))


def same(a, b) -> bool:
    return all(jax.tree.leaves(jax.tree.map(lambda x, y: bool(jnp.array_equal(x, y)), a, b)))


def test_actor_and_targets_move_only_every_second_step(state, batch):
    update = jax.jit(TD3BC.update)
    first, metrics1 = update(state, batch, jax.random.PRNGKey(1), batch_context(batch))
    assert int(first.step) == 1
    assert same(first.actor.params, state.actor.params)
    assert same(first.actor.target_params, state.actor.target_params)
    assert same(first.critic.target_params, state.critic.target_params)
    assert not same(first.critic.params, state.critic.params)
    assert np.isnan(metrics1["actor_loss"]) and np.isfinite(metrics1["critic_loss"])

    second, metrics2 = update(first, batch, jax.random.PRNGKey(2), batch_context(batch))
    assert not same(second.actor.params, first.actor.params)
    assert np.isfinite(metrics2["actor_loss"])
    tau = state.config.tau
    for online, old, new in (
        (second.critic.params, first.critic.target_params, second.critic.target_params),
        (second.actor.params, first.actor.target_params, second.actor.target_params),
    ):
        expected = jax.tree.map(lambda p, t: tau * p + (1 - tau) * t, online, old)
        jax.tree.map(
            lambda e, n: np.testing.assert_allclose(e, n, rtol=1e-6, atol=1e-7), expected, new
        )


def test_lambda_and_bc_term_follow_the_official_formula(state, batch):
    after_critic, _ = TD3BC.update_critic(state, batch, jax.random.PRNGKey(1))
    _, metrics = TD3BC.update_actor(after_critic, batch)
    pi = TD3BC.act(after_critic, batch.observations)
    q1 = after_critic.critic.apply_fn(after_critic.critic.params, batch.observations, pi)[0]
    alpha = state.config.alpha
    np.testing.assert_allclose(metrics["lambda"], alpha / np.abs(q1).mean(), rtol=1e-5)
    # The BC term averages over batch AND action dimensions.
    bc = np.mean((np.asarray(pi) - np.asarray(batch.actions)) ** 2)
    np.testing.assert_allclose(metrics["bc_loss"], bc, rtol=1e-5)
    np.testing.assert_allclose(
        metrics["actor_loss"], -alpha / np.abs(q1).mean() * q1.mean() + bc, rtol=1e-5
    )


def test_lambda_is_a_constant_in_the_actor_gradient(state, batch):
    """d loss / d Q must be -lambda / B: lambda's own dependence on Q is not differentiated."""
    from offrl.td3 import normalized_q_bc_loss

    q = jnp.linspace(-3.0, 5.0, BATCH)
    pi = jnp.zeros((BATCH, ACT))
    grad = jax.grad(lambda q: normalized_q_bc_loss(q, pi, pi, 2.5)[0])(q)
    np.testing.assert_allclose(grad, -2.5 / jnp.abs(q).mean() / BATCH, rtol=1e-6)


def test_first_member_is_q1_of_the_twin_critic(state, batch):
    both = state.critic.apply_fn(state.critic.params, batch.observations, batch.actions)
    q1 = first_member(state.critic, state.critic.params, batch.observations, batch.actions)
    np.testing.assert_allclose(q1, both[0], rtol=1e-6)
    assert not np.allclose(both[0], both[1])


def test_critic_target_uses_the_minimum_of_the_twin_targets(state, batch):
    from offrl.td3 import clipped_double_q_target

    next_actions = TD3BC.act(state, batch.next_observations)
    targets = clipped_double_q_target(state.critic, batch, next_actions, 0.99)
    q = state.critic.apply_fn(state.critic.target_params, batch.next_observations, next_actions)
    expected = batch.rewards + 0.99 * (1 - batch.dones) * np.minimum(q[0], q[1])
    np.testing.assert_allclose(targets, expected, rtol=1e-6)


def test_initialisation_matches_pytorch_linear(state):
    layer = state.actor.params["params"]["MLP_0"]["TorchDense_1"]
    bound = 1 / np.sqrt(256)
    for values in (layer["kernel"], layer["bias"]):
        assert np.abs(values).max() <= bound
        assert np.abs(values).max() > 0.95 * bound
    np.testing.assert_allclose(np.std(layer["kernel"]), bound / np.sqrt(3), rtol=0.02)


def test_actions_are_bounded_by_tanh(state, batch):
    actions = TD3BC.act(state, 100 * batch.observations)
    assert actions.shape == (BATCH, ACT)
    assert np.all(np.abs(actions) <= 1.0)


@pytest.mark.parametrize(
    "field,value", [("tau", 0.0), ("discount", 1.5), ("policy_freq", 0), ("batch_size", 0)]
)
def test_invalid_hyper_parameters_are_refused(field, value):
    with pytest.raises(ConfigError, match=field):
        TD3BC.Config(**{field: value})
