"""A2PR update invariants against the official code's semantics (docs/algorithms.md §4)."""

import json
import math
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import HOPPER_DATASET_ID, batch_context

from agents import a2pr as A2PR
from offrl.agent import DatasetSpec, official_config
from offrl.data.registry import load_task
from offrl.data.transitions import Transitions
from offrl.errors import ConfigError
from offrl.nets import VAE
from offrl.td3 import bellman_target, clipped_double_q_target, smoothed_target_actions
from offrl.train import fit

OBS, ACT, BATCH = 11, 3, 64
# One hidden layer per network: compiling (not running) dominates these tests on CPU, and
# XLA's compile time grows with the number of layers (each initialiser is a threefry draw).
SMALL = {
    "hidden_dims": (32,),
    "critic_hidden_dims": (32,),
    "vae_hidden_dims": (32,),
    "batch_size": BATCH,
}
LOSSES = {
    "actor_loss",
    "bc_loss",
    "bc_weight",
    "critic_loss",
    "kl_loss",
    "lambda",
    "positive_fraction",
    "q_mean",
    "recon_loss",
    "v_mean",
    "vae_loss",
    "vae_target_fraction",
    "value_loss",
}


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


# Jitted once per module: op-by-op dispatch of these small networks costs more than compiling.
init = jax.jit(A2PR.init, static_argnums=(1, 2))
update = jax.jit(A2PR.update)
update_actor = jax.jit(A2PR.update_actor)


@pytest.fixture(scope="module")
def state() -> A2PR.State:
    return init(jax.random.PRNGKey(0), DatasetSpec(OBS, ACT), A2PR.Config(**SMALL))


@pytest.fixture(scope="module")
def critic_step(state, batch) -> tuple[A2PR.State, dict]:
    """The first iteration: critic, value and VAE steps only (the actor waits for step 2)."""
    return update(state, batch, jax.random.PRNGKey(1), batch_context(batch))


@pytest.fixture(scope="module")
def trained(critic_step) -> A2PR.State:
    """The state the delayed actor step sees: after the step of the same iteration."""
    return critic_step[0]


def same(a, b) -> bool:
    return all(jax.tree.leaves(jax.tree.map(lambda x, y: bool(jnp.array_equal(x, y)), a, b)))


# --- candidate selection and weights ---------------------------------------------------------


def test_bc_target_and_weight_on_hand_computed_rows():
    mask = 0.4
    #                 both   tie    data   none   tie@V  data
    q_recon = jnp.array([2.0, 1.0, -1.0, -1.0, 0.0, 0.5])
    q_data = jnp.array([1.0, 1.0, 0.5, -2.0, 0.0, 3.0])
    v = jnp.array([0.0, 0.0, 0.0, 0.0, 0.0, 1.0])
    recon = jnp.full((6, 2), 7.0)
    actions = jnp.full((6, 2), -7.0)
    target, weight, use_vae = A2PR.advantage_guided_target(recon, actions, q_recon, q_data, v, mask)
    # Ties (rows 1 and 4) go to the VAE action.
    np.testing.assert_array_equal(use_vae, [True, True, False, True, True, False])
    np.testing.assert_array_equal(target[:, 0], [7.0, 7.0, -7.0, 7.0, 7.0, -7.0])
    # mask where 1{Q1(s, recon) >= V} OR 1{Q1(s, a) > V} (the official bool + bool), none where
    # neither: a row where both beat V weighs mask, not 2 x mask. At Q1 = V exactly the VAE action
    # counts (>=) and the dataset action does not (>).
    np.testing.assert_allclose(weight, [0.4, 0.4, 0.4, 0.0, 0.4, 0.4], rtol=1e-6)


def test_rows_where_neither_candidate_beats_v_get_no_bc_gradient():
    q_recon = jnp.array([-1.0, 2.0])
    q_data = jnp.array([-2.0, 1.0])
    v = jnp.zeros(2)
    actions = jnp.zeros((2, 2))

    def bc(pi):
        target, weight, _ = A2PR.advantage_guided_target(2 * pi, actions, q_recon, q_data, v, 1)
        return (weight[:, None] * (pi - target) ** 2).mean()

    grad = jax.grad(bc)(jnp.ones((2, 2)))
    assert np.all(np.asarray(grad[0]) == 0.0)
    assert np.all(np.asarray(grad[1]) != 0.0)


# --- the VAE ---------------------------------------------------------------------------------


def test_vae_loss_ignores_rows_with_q1_not_above_v(state, batch):
    vae, key, weight = state.vae, jax.random.PRNGKey(3), 1.5

    def recon_of_positive_rows(params, positive):
        recon = vae.apply_fn(params, batch.observations, batch.actions, key)[0]
        squared = jnp.where(positive[:, None], (recon - batch.actions) ** 2, 0.0)
        return weight * squared.sum() / (BATCH * ACT)  # averaged over all B x A, as the code

    @jax.jit
    def evaluate(positive):
        def loss_fn(params):
            return A2PR.vae_loss(params, vae, batch, positive, key, weight)

        (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(vae.params)
        expected = jax.grad(recon_of_positive_rows)(vae.params, positive)
        decoder = lambda tree: tree["params"]["decoder"]  # noqa: E731
        hand = recon_of_positive_rows(vae.params, positive)
        return loss, metrics, decoder(grads), decoder(expected), hand

    # No positive row: the loss is 0.5 KL alone and the decoder gets no gradient at all.
    loss, metrics, grads, _, _ = evaluate(jnp.zeros(BATCH, bool))
    np.testing.assert_allclose(loss, 0.5 * metrics["kl_loss"], rtol=1e-6)
    assert all(np.all(np.asarray(g) == 0.0) for g in jax.tree.leaves(grads))

    # Some positive rows: the reconstruction term and the decoder gradient are theirs alone.
    loss, metrics, grads, expected, hand = evaluate(jnp.arange(BATCH) % 3 == 0)
    np.testing.assert_allclose(metrics["recon_loss"], hand, rtol=1e-5)
    np.testing.assert_allclose(loss, metrics["recon_loss"] + 0.5 * metrics["kl_loss"], rtol=1e-6)
    jax.tree.map(
        lambda e, a: np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-9), expected, grads
    )


def test_vae_mask_uses_the_updated_critic_and_the_value_before_its_step(state, batch, critic_step):
    new, metrics = critic_step
    assert same(new.value_params_before, state.value.params)
    assert not same(new.value.params, state.value.params)
    q_data = A2PR.q1(new, batch.observations, batch.actions)
    v_before = A2PR.state_value(state.value, state.value.params, batch.observations)
    np.testing.assert_allclose(metrics["v_mean"], v_before.mean(), rtol=1e-5)
    np.testing.assert_allclose(metrics["positive_fraction"], np.mean(q_data > v_before))


def test_vae_networks_follow_the_official_sizes():
    spec = DatasetSpec(OBS, ACT)
    shapes = jax.eval_shape(lambda key: A2PR.init(key, spec, A2PR.Config()), jax.random.PRNGKey(0))
    kernels = lambda tree: [  # noqa: E731
        layer["kernel"].shape for _, layer in sorted(tree.items(), key=lambda kv: kv[0])
    ]
    vae = shapes.vae.params["params"]
    assert kernels(vae["encoder"]) == [(OBS + ACT, 750), (750, 750), (750, 2 * 2 * ACT)]
    assert kernels(vae["decoder"]) == [(OBS + 2 * ACT, 750), (750, 750), (750, ACT)]
    actor = shapes.actor.params["params"]["MLP_0"]
    assert kernels(actor) == [(OBS, 256), (256, 256), (256, 256), (256, ACT)]
    critic = shapes.critic.params["params"]["VmapCritic_0"]["MLP_0"]
    assert kernels(critic) == [(2, OBS + ACT, 256)] + [(2, 256, 256)] * 3 + [(2, 256, 1)]
    value = shapes.value.params["params"]
    assert kernels(value) == [(OBS, 256)] + [(256, 256)] * 3 + [(256, 1)]


def test_vae_log_std_is_clamped_and_decoder_is_bounded(state, batch):
    vae = state.vae
    huge = 1e4 * batch.observations
    _, log_std = vae.apply_fn(vae.params, huge, batch.actions, method=VAE.encode)
    assert float(log_std.min()) == -4.0 and float(log_std.max()) == 15.0
    recon, _, _ = vae.apply_fn(vae.params, huge, batch.actions, jax.random.PRNGKey(2))
    assert recon.shape == (BATCH, ACT) and np.all(np.abs(recon) <= 1.0)


# --- the value network -----------------------------------------------------------------------


def test_value_target_is_the_minimum_of_the_two_bellman_targets(state, batch):
    # Online critic far from its target, so y_cur and y_tgt differ clearly and the min matters.
    other = init(jax.random.PRNGKey(9), DatasetSpec(OBS, ACT), state.config)
    state = state.replace(critic=state.critic.replace(params=other.critic.params))
    key = jax.random.PRNGKey(4)
    new, metrics = update(state, batch, key, batch_context(batch))

    c = state.config
    noise_key, _ = jax.random.split(key)
    next_actions = smoothed_target_actions(
        state.actor, batch.next_observations, noise_key, c.policy_noise, c.noise_clip, 1.0
    )
    y_tgt = clipped_double_q_target(state.critic, batch, next_actions, c.discount)
    next_q = new.critic.apply_fn(new.critic.params, batch.next_observations, next_actions)
    y_cur = bellman_target(batch.rewards, batch.dones, next_q.min(axis=0), c.discount)
    assert np.any(y_cur < y_tgt) and np.any(y_tgt < y_cur)
    v = A2PR.state_value(state.value, state.value.params, batch.observations)
    loss = lambda y: float(np.mean((np.asarray(v) - np.asarray(y)) ** 2))  # noqa: E731
    np.testing.assert_allclose(metrics["value_loss"], loss(np.minimum(y_cur, y_tgt)), rtol=1e-5)
    assert not np.isclose(metrics["value_loss"], loss(y_tgt), rtol=1e-3)
    assert not np.isclose(metrics["value_loss"], loss(y_cur), rtol=1e-3)


# --- the actor -------------------------------------------------------------------------------


def test_actor_gradient_flows_through_the_vae_reconstruction(trained, batch):
    key = jax.random.PRNGKey(5)
    vae_apply = trained.vae.apply_fn

    def stopped_apply(*args, **kwargs):
        return jax.tree.map(jax.lax.stop_gradient, vae_apply(*args, **kwargs))

    detached = trained.replace(vae=trained.vae.replace(apply_fn=stopped_apply))
    grad = jax.jit(jax.grad(A2PR.actor_loss, has_aux=True))
    (g_through, metrics), (g_detached, metrics_detached) = (
        grad(trained.actor.params, trained, batch, key),
        grad(detached.actor.params, detached, batch, key),
    )
    # Same loss, same targets, same weights: only the gradient path through the VAE differs.
    assert float(metrics["bc_weight"]) > 0 and float(metrics["vae_target_fraction"]) > 0
    for name in ("actor_loss", "bc_loss", "bc_weight", "vae_target_fraction"):
        np.testing.assert_allclose(metrics[name], metrics_detached[name], rtol=1e-6)
    differences = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), g_through, g_detached)
    assert max(jax.tree.leaves(differences)) > 1e-6
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(g_through))


def test_one_actor_update_weighs_a_row_by_mask_once_when_both_candidates_beat_v(trained, batch):
    """One actor step against the loss written out by hand, with per-row weights counted in numpy.

    V is shifted so that the batch holds rows where both candidates, one, or neither beat V; the
    official weight is mask on the first two kinds (bool + bool is an OR in PyTorch), 0 on the last.
    """
    c = trained.config
    _, key = jax.random.split(trained.rng)  # the draw update_actor makes for the VAE's z
    obs, actions = batch.observations, batch.actions
    pi = A2PR.act(trained, obs)
    recon = trained.vae.apply_fn(trained.vae.params, obs, pi, key)[0]
    q_recon = np.asarray(A2PR.q1(trained, obs, recon))
    q_data = np.asarray(A2PR.q1(trained, obs, actions))
    v = np.asarray(A2PR.state_value(trained.value, trained.value_params_before, obs))
    # A constant added to V's output bias: half the rows then have both candidates above V.
    shift = float(np.median(np.minimum(q_recon, q_data) - v))
    shifted = jax.tree.map(
        lambda p: p + shift if p.shape == (1,) else p, trained.value_params_before
    )
    state = trained.replace(value_params_before=shifted)
    v = v + shift
    both = (q_recon >= v) & (q_data > v)
    either = (q_recon >= v) | (q_data > v)
    assert both.sum() >= 8 and (either & ~both).sum() >= 1 and (~either).sum() >= 1
    weight = np.where(either, c.mask, 0.0).astype(np.float32)
    use_vae = q_recon >= q_data

    def hand_loss(params):
        pi = state.actor.apply_fn(params, obs)
        q_pi = A2PR.q1(state, obs, pi)
        recon_pi = state.vae.apply_fn(state.vae.params, obs, pi, key)[0]
        target = jnp.where(use_vae[:, None], recon_pi, actions)
        lam = jax.lax.stop_gradient(c.alpha / jnp.abs(q_pi).mean())
        bc = (weight[:, None] * (pi - target) ** 2).mean()
        return -lam * q_pi.mean() + bc, bc

    (loss, bc), grads = jax.jit(jax.value_and_grad(hand_loss, has_aux=True))(state.actor.params)
    agent_grads, _ = jax.jit(jax.grad(A2PR.actor_loss, has_aux=True))(
        state.actor.params, state, batch, key
    )
    _, metrics = update_actor(state, batch)
    np.testing.assert_allclose(metrics["bc_weight"], weight.mean(), rtol=1e-6)
    np.testing.assert_allclose(metrics["bc_loss"], bc, rtol=1e-5)
    # The Q term is about -alpha: float32 rounds it to ~3e-7, whatever the small total.
    np.testing.assert_allclose(metrics["actor_loss"], loss, atol=1e-5 * c.alpha)
    # Same function, summed in another order: each tensor agrees to float32 rounding of its norm
    # (a row counted as 2 x mask moves whole tensors by tens of percent).
    for ours, hand in zip(jax.tree.leaves(agent_grads), jax.tree.leaves(grads), strict=True):
        gap = np.linalg.norm(np.asarray(ours) - np.asarray(hand))
        assert gap <= 1e-4 * np.linalg.norm(np.asarray(hand)), gap / np.linalg.norm(hand)


def test_the_actor_step_moves_only_the_actor_and_the_targets(state, trained, batch):
    after, metrics = update_actor(trained, batch)
    assert not same(after.actor.params, trained.actor.params)
    for name in ("vae", "value"):
        assert same(getattr(after, name), getattr(trained, name))
    assert same(after.value_params_before, trained.value_params_before)
    assert same(after.critic.params, trained.critic.params)
    assert same(after.critic.opt_state, trained.critic.opt_state)
    assert not same(after.critic.target_params, trained.critic.target_params)
    assert not same(after.rng, trained.rng)
    alpha = state.config.alpha
    pi = A2PR.act(trained, batch.observations)
    q_pi = A2PR.q1(trained, batch.observations, pi)
    np.testing.assert_allclose(metrics["lambda"], alpha / np.abs(q_pi).mean(), rtol=1e-5)


def test_actor_and_targets_move_only_every_second_step(state, batch, critic_step):
    first, metrics1 = critic_step
    assert int(first.step) == 1
    assert same(first.actor, state.actor)
    assert same(first.critic.target_params, state.critic.target_params)
    assert same(first.rng, state.rng)
    for name in ("critic", "value", "vae"):
        assert not same(getattr(first, name).params, getattr(state, name).params)
    assert np.isnan(metrics1["actor_loss"]) and np.isfinite(metrics1["vae_loss"])

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


@pytest.mark.parametrize(
    "field,value",
    [("mask", -0.1), ("vae_weight", -1.0), ("vae_hidden_dims", ()), ("discount", 1.5)],
)
def test_invalid_hyper_parameters_are_refused(field, value):
    with pytest.raises(ConfigError, match=field):
        A2PR.Config(**{field: value})


# --- a short real run, then resumed ------------------------------------------------------------


def fit_hopper(loaded, run_dir, steps: int):
    return fit(
        A2PR,
        loaded.transitions,
        A2PR.Config(**SMALL),
        seeds=[0, 1],
        steps=steps,
        eval_every=100,
        eval_episodes=2,
        task=loaded.task,
        out_dir=run_dir,
        progress=False,
    )


@pytest.fixture(scope="module")
def loaded(hopper_dataset):
    return load_task(f"minari/{HOPPER_DATASET_ID}")


@pytest.fixture(scope="module")
def short_run(loaded, tmp_path_factory):
    """A2PR on the collected random Hopper data, seeds 0 and 1, 200 steps, evaluated every 100."""
    return fit_hopper(loaded, tmp_path_factory.mktemp("a2pr") / "run", 200)


def test_a_short_real_run(short_run):
    steps_and_seeds = [(r["step"], r["seed"]) for r in short_run.records]
    assert steps_and_seeds == [(100, 0), (100, 1), (200, 0), (200, 1)]
    for record in short_run.records:
        assert record["agent"] == "a2pr"
        assert set(record["losses"]) == LOSSES
        assert all(math.isfinite(v) for v in record["losses"].values()), record["losses"]
        assert record["losses"]["critic_loss"] > 0 and record["losses"]["vae_loss"] > 0
        assert len(record["episode_returns"]) == 2
        assert all(math.isfinite(r) for r in record["episode_returns"])
    assert short_run.records[0]["losses"] != short_run.records[1]["losses"]
    assert int(short_run.carry.agent.step) == 200


def test_a_run_resumes_from_its_checkpoint(loaded, short_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(short_run.run_dir, run_dir)
    resumed = fit_hopper(loaded, run_dir, 300)
    assert [(r["step"], r["seed"]) for r in resumed.records] == [(300, 0), (300, 1)]
    assert int(resumed.carry.agent.step) == 300
    stored = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    assert stored[:4] == json.loads(json.dumps(short_run.records))
    assert [r["step"] for r in stored[4:]] == [300, 300]


def test_per_task_configs_are_the_official_ones():
    hopper = official_config(A2PR, "offrl/hopper/medium-v0")
    assert hopper.discount == 0.995 and hopper.mask == 0.4
    assert official_config(A2PR, "d4rl/halfcheetah-medium-v2").alpha == 40.0
    assert official_config(A2PR, "offrl/walker2d/medium-v0").vae_weight == 1.5
    assert official_config(A2PR, "d4rl/antmaze-umaze-v2") == A2PR.Config()
