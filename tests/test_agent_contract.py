"""The one agent contract: every agent has the same functions with the same signatures, and the
TD3-family's shared config fields (a LayerNorm critic) work in every agent."""

from __future__ import annotations

import inspect

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents import AGENTS
from offrl.agent import Context, DatasetSpec
from offrl.data.transitions import Transitions, sample_rows, take
from offrl.td3 import TD3Config, first_member, leading_members

OBS, ACT, ROWS, BATCH = 5, 2, 64, 16
SMALL = {
    "td3bc": {},
    "prdc": {"search": "jax", "candidates": 0, "memory": 0},
    "a2pr": {"hidden_dims": (32, 32), "critic_hidden_dims": (32, 32), "vae_hidden_dims": (32,)},
    "ggdtd": {"ensemble_size": 3},
}


def table(seed: int = 0) -> Transitions:
    rng = np.random.default_rng(seed)
    return Transitions(
        observations=rng.normal(size=(ROWS, OBS)).astype(np.float32),
        actions=rng.uniform(-1, 1, size=(ROWS, ACT)).astype(np.float32),
        rewards=rng.normal(size=ROWS).astype(np.float32),
        next_observations=rng.normal(size=(ROWS, OBS)).astype(np.float32),
        dones=(rng.uniform(size=ROWS) < 0.1).astype(np.float32),
    )


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_every_agent_has_the_one_contract(name):
    agent = AGENTS[name]
    assert isinstance(agent.BEHAVIOR_VERSION, int) and issubclass(agent.Config, TD3Config)
    signatures = {
        "init": ["key", "spec", "config"],
        "prepare": ["data", "config"],
        "update": ["state", "batch", "key", "context"],
        "act": ["state", "observations"],
    }
    for function, parameters in signatures.items():
        assert list(inspect.signature(getattr(agent, function)).parameters) == parameters


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_a_layer_norm_critic_is_one_config_field_in_every_agent(name):
    agent = AGENTS[name]
    config = agent.Config(batch_size=BATCH, critic_layer_norm=True, **SMALL[name])
    data = table()
    state = agent.init(jax.random.PRNGKey(0), DatasetSpec(OBS, ACT), config)
    critic_layers = flax.traverse_util.flatten_dict(state.critic.params)
    actor_layers = flax.traverse_util.flatten_dict(state.actor.params)
    assert any("LayerNorm_0" in path for path in critic_layers)
    assert not any("LayerNorm_0" in path for path in actor_layers)

    update = jax.jit(agent.update)
    prepared = agent.prepare(data, config)
    for step in range(4):  # two actor steps at policy_freq 2
        rows = sample_rows(data, jax.random.PRNGKey(step), BATCH)
        state, metrics = update(
            state, take(data, rows), jax.random.PRNGKey(step), Context(rows, prepared)
        )
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(state))
    assert np.isfinite(metrics["actor_loss"])


def test_the_first_members_of_a_layer_norm_ensemble_are_its_leading_outputs():
    agent = AGENTS["ggdtd"]
    config = agent.Config(critic_layer_norm=True, ensemble_size=3)
    state = agent.init(jax.random.PRNGKey(1), DatasetSpec(OBS, ACT), config)
    data = table(1)
    everything = state.critic.apply_fn(state.critic.params, data.observations, data.actions)
    first_three = leading_members(
        state.critic, state.critic.params, 3, data.observations, data.actions
    )
    np.testing.assert_allclose(first_three, everything[:3], rtol=1e-5, atol=1e-6)
    td3bc = AGENTS["td3bc"]
    state = td3bc.init(
        jax.random.PRNGKey(2), DatasetSpec(OBS, ACT), td3bc.Config(critic_layer_norm=True)
    )
    both = state.critic.apply_fn(state.critic.params, data.observations, data.actions)
    q1 = first_member(state.critic, state.critic.params, data.observations, data.actions)
    np.testing.assert_allclose(q1, both[0], rtol=1e-5, atol=1e-6)
    assert not jnp.allclose(both[0], both[1])
