"""GGD-TD: the GGD math against SciPy, BIEV against a NumPy reference, and a real short run."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import HOPPER_DATASET_ID, batch_context
from scipy import optimize, special, stats

from agents import ggdtd as GGDTD
from offrl import ggd
from offrl.data.registry import load_task
from offrl.data.transitions import Transitions
from offrl.errors import ConfigError
from offrl.td3 import normalized_q_bc_loss
from offrl.train import fit

OBS, ACT, BATCH = 11, 3, 64
SMALL = {"hidden_dims": (32, 32), "batch_size": BATCH}
biev_weights = jax.jit(ggd.biev_weights, static_argnums=1)  # compiled: eager dispatch is slow


def reference_mbbe(td_errors: np.ndarray) -> np.ndarray:
    """The released `biev_loss` variance, members on axis 0."""
    n = td_errors.shape[0]
    kappa = stats.kurtosis(td_errors, axis=0, bias=False)
    return np.clip(np.var(td_errors, axis=0) / (kappa / n + (n + 1) / (n - 1)), 1e-6, None)


def ebs_of(variance: np.ndarray, xi: float) -> float:
    inverse = 1.0 / (variance.astype(np.float64) + xi)
    return inverse.sum() ** 2 / (inverse**2).sum()


def test_paper_nll_is_minus_the_gennorm_log_density():
    rng = np.random.default_rng(0)
    delta = (rng.standard_normal(500) * rng.choice([0.1, 1.0, 4.0], 500)).astype(np.float32)
    beta = rng.uniform(ggd.BETA_MIN, ggd.BETA_MAX, 500).astype(np.float32)
    expected = -stats.gennorm.logpdf(delta.astype(np.float64), beta.astype(np.float64))
    np.testing.assert_allclose(ggd.ggd_nll(delta, beta, "paper"), expected, rtol=2e-5, atol=2e-5)


def test_code_form_is_beta_abs_delta_with_normalised_beta_weights():
    rng = np.random.default_rng(1)
    delta = rng.standard_normal((5, 40)).astype(np.float32)
    beta = rng.uniform(0.3, 3.0, (5, 40)).astype(np.float32)
    per_member = beta * np.abs(delta) - np.log(beta) + special.gammaln(1 / beta)
    np.testing.assert_allclose(ggd.ggd_nll(delta, beta, "code"), per_member, rtol=1e-5, atol=1e-5)
    omega = beta / beta.sum(axis=0)
    expected = (omega * per_member).sum(axis=0).mean()
    np.testing.assert_allclose(ggd.weighted_ggd_nll(delta, beta, "code"), expected, rtol=1e-5)
    # The shape weights are not detached: d/d beta_k also differentiates omega = beta / sum(beta).
    grad = jax.jit(jax.grad(lambda b: ggd.weighted_ggd_nll(delta, b, "code")))(jnp.asarray(beta))
    b, total = beta.astype(np.float64), beta.sum(axis=0, dtype=np.float64)
    dnll_dbeta = np.abs(delta) - 1 / b - special.digamma(1 / b) / b**2
    expected = (per_member + b * dnll_dbeta) / total - (b * per_member).sum(axis=0) / total**2
    np.testing.assert_allclose(grad, expected / 40, rtol=1e-4, atol=1e-6)
    assert not np.allclose(grad, omega * dnll_dbeta / 40, rtol=1e-2)  # not omega held fixed


def test_variance_and_kurtosis_closed_forms_match_scipy():
    beta = np.linspace(ggd.BETA_MIN + 0.1, ggd.BETA_MAX, 30)
    variance, kurtosis = stats.gennorm.stats(beta, moments="vk")
    b = jnp.asarray(beta, jnp.float32)
    np.testing.assert_allclose(ggd.aleatoric_variance(b), variance, rtol=2e-4)
    np.testing.assert_allclose(ggd.excess_kurtosis(b), kurtosis, rtol=2e-4, atol=1e-5)
    assert np.isfinite(ggd.aleatoric_variance(jnp.float32(ggd.BETA_MIN)))


def test_beta_stays_between_floor_and_cap_and_follows_softplus():
    raw = jnp.linspace(-200.0, 200.0, 2001)
    beta = np.asarray(ggd.beta_from_raw(raw))
    assert beta.min() >= ggd.BETA_MIN and beta.max() <= ggd.BETA_MAX
    assert np.all(np.diff(beta) >= -1e-6)  # monotone up to float32 rounding
    working = np.asarray(jax.nn.softplus(raw)) <= 2.0
    assert np.abs(beta - np.asarray(jax.nn.softplus(raw)))[working].max() < 0.11


@pytest.mark.parametrize("form", ["paper", "code"])
def test_gradients_are_finite_near_the_floor_and_the_cap(form):
    raw = jnp.array([[-80.0, -30.0, -5.0, 0.0, 5.0, 30.0, 80.0]] * 2)
    delta = jnp.array(
        [[0.0, 1e-9, 1e-3, 0.5, 3.0, 100.0, 1e3], [1e3, 50.0, 0.0, 1e-9, 2.0, 0.0, 1.0]]
    )

    def loss(raw, delta):
        return ggd.weighted_ggd_nll(delta, ggd.beta_from_raw(raw), form)

    value, grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(raw, delta)
    assert np.isfinite(value)
    for g in grads:
        assert np.all(np.isfinite(g))
    beta = ggd.beta_from_raw(raw)
    assert np.all(np.isfinite(ggd.aleatoric_variance(beta)))


@pytest.mark.parametrize("members", [2, 3, 4, 5, 8])
def test_mbbe_variance_matches_the_released_numpy_code(members):
    rng = np.random.default_rng(members)
    scale = np.exp(rng.normal(0, 2, 300))
    td = (rng.laplace(size=(members, 300)) * scale + rng.normal(0, 5, 300)).astype(np.float32)
    td[:, :5] = td[0, :5] + rng.normal(0, 1e-5, (members, 5))  # near-agreeing members: floored
    np.testing.assert_allclose(
        ggd.sample_excess_kurtosis(td)[5:],
        stats.kurtosis(td.astype(np.float64), axis=0, bias=False)[5:],
        rtol=2e-3,
        atol=2e-3,
    )
    np.testing.assert_allclose(
        ggd.mbbe_variance(td), reference_mbbe(td.astype(np.float64)), rtol=2e-3, atol=1e-6
    )


@pytest.mark.parametrize("points,rounds", [(2, 20), (16, 4)])
def test_biev_weights_reach_the_minimum_effective_batch_size(points, rounds):
    rng = np.random.default_rng(3)
    variance = np.exp(rng.normal(0, 2, 256)).astype(np.float32)
    variance[:5] = [1e-6, 3e-5, 1e-4, 1e-3, 1e-3]  # a few confident samples dominate
    assert ebs_of(variance, 0.0) < 16  # needs xi > 0
    solve = jax.jit(ggd.solve_xi, static_argnums=(1, 2, 3))
    xi = float(solve(jnp.asarray(variance), 16, points, rounds))
    reference = optimize.brentq(lambda x: ebs_of(variance, x) - 16, 1e-12, 1e6, xtol=1e-14)
    assert xi > 0 and xi == pytest.approx(reference, rel=2e-3)
    weights = ggd.inverse_variance_weights(jnp.asarray(variance), xi)
    assert float(ggd.effective_batch_size(weights)) >= 16 - 1e-3
    np.testing.assert_allclose(weights.sum(), 1.0, rtol=1e-5)


def test_biev_weights_keep_xi_zero_when_the_minimum_is_already_met():
    rng = np.random.default_rng(4)
    td = rng.normal(0, 1, (5, 64)).astype(np.float32)
    weights, ebs, xi = biev_weights(jnp.asarray(td), 16)
    variance = reference_mbbe(td.astype(np.float64))
    assert ebs_of(variance, 0.0) >= 16 and float(xi) == 0.0
    np.testing.assert_allclose(weights, (1 / variance) / (1 / variance).sum(), rtol=1e-4)
    np.testing.assert_allclose(weights.sum(), 1.0, rtol=1e-5)
    # A batch of 8 asks for min(B - 1, 16) = 7, here with one dominant sample (xi > 0).
    td_small = td[:, :8] * np.array([1e-4, 1, 1, 1, 1, 1, 1, 50], np.float32)
    weights, ebs, xi = biev_weights(jnp.asarray(td_small), 16)
    assert float(xi) > 0 and 7 - 1e-3 <= float(ebs) <= 7.05
    np.testing.assert_allclose(weights.sum(), 1.0, rtol=1e-5)


def test_biev_weights_are_constants_in_the_gradient():
    rng = np.random.default_rng(5)
    td = jnp.asarray(rng.normal(0, 1, (5, 32)) * np.exp(rng.normal(0, 2, 32)), jnp.float32)

    def loss(td):
        weights, _, _ = ggd.biev_weights(td, 16)
        return ggd.weighted_absolute_error(td, weights)

    weights = biev_weights(td, 16)[0]
    np.testing.assert_allclose(jax.jit(jax.grad(loss))(td), weights * jnp.sign(td) / 32, rtol=1e-6)


@pytest.fixture(scope="module")
def run(hopper_dataset, tmp_path_factory):
    """A real short run: 2 seeds x 200 steps on random Hopper-v5 data, evaluated every 100."""
    loaded = load_task(f"minari/{HOPPER_DATASET_ID}")
    return fit(
        GGDTD,
        loaded.transitions,
        GGDTD.Config(**SMALL),
        seeds=[0, 1],
        steps=200,
        eval_every=100,
        eval_episodes=2,
        task=loaded.task,
        out_dir=tmp_path_factory.mktemp("ggdtd") / "run",
        progress=False,
    )


def test_short_real_run_on_hopper(run):
    assert [r["step"] for r in run.records] == [100, 100, 200, 200]
    for record in run.records:
        losses = record["losses"]
        for name in ("critic_loss", "actor_loss", "beta_mean", "aleatoric_variance"):
            assert np.isfinite(losses[name]), name
        assert ggd.BETA_MIN <= losses["beta_min"] <= losses["beta_max"] <= ggd.BETA_MAX
        assert losses["effective_batch_size"] >= 16 - 1e-3
        assert np.isfinite(record["return"])


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
def trained(run):
    """The seed-0 state after 200 steps (Hopper: 11 observation and 3 action dimensions)."""
    agent = run.carry.agent
    return jax.tree.map(lambda x: x[0], agent.replace(step=agent.step[None]))


@pytest.fixture(scope="module")
def outputs(trained, batch) -> dict:
    """The agent's pieces on one batch, in one compiled call (op-by-op dispatch is slow)."""

    @jax.jit
    def probe(state, batch):
        params, target_params = state.critic.params, state.critic.target_params
        pi = GGDTD.act(state, batch.observations)
        pi_next = GGDTD.act(state, batch.next_observations)
        q, beta = GGDTD.critic_outputs(state.critic, params, batch.observations, batch.actions)
        actor_losses = [
            GGDTD.actor_loss(
                state.actor.params, state.replace(config=GGDTD.Config(**SMALL, pessimism=k)), batch
            )[0]
            for k in (0.0, 1.5)
        ]
        return {
            "q": q,
            "beta": beta,
            "q1": GGDTD.first_ensemble_q(state, params, batch.observations, batch.actions),
            "pi": pi,
            "q1_pi": GGDTD.first_ensemble_q(state, params, batch.observations, pi),
            "actor_losses": actor_losses,
            "targets": GGDTD.member_targets(state, batch, pi_next),
            "q_next": GGDTD.critic_outputs(
                state.critic, target_params, batch.next_observations, pi_next
            )[0],
        }

    return probe(trained, batch)


def same(a, b) -> bool:
    return jax.tree.all(jax.tree.map(jnp.array_equal, a, b))


def test_actor_and_targets_move_only_every_second_step(trained, batch):
    assert int(trained.step) == 200
    update = jax.jit(GGDTD.update)
    first, metrics = update(trained, batch, jax.random.PRNGKey(1), batch_context(batch))
    assert np.isnan(metrics["actor_loss"]) and np.isfinite(metrics["critic_loss"])
    assert same(first.actor.params, trained.actor.params)
    assert same(first.actor.target_params, trained.actor.target_params)
    assert same(first.critic.target_params, trained.critic.target_params)
    assert not same(first.critic.params, trained.critic.params)
    second, metrics = update(first, batch, jax.random.PRNGKey(2), batch_context(batch))
    assert np.isfinite(metrics["actor_loss"])
    assert not same(second.actor.params, first.actor.params)
    assert not same(second.critic.target_params, first.critic.target_params)
    assert ggd.BETA_MIN <= metrics["beta_min"] <= metrics["beta_mean"] <= metrics["beta_max"]
    assert metrics["effective_batch_size"] >= 16 - 1e-3


def test_members_targets_and_the_actors_q(outputs, batch):
    assert outputs["q"].shape == outputs["beta"].shape == (2, 5, BATCH)
    np.testing.assert_allclose(outputs["q1"], outputs["q"][0], rtol=1e-6)
    # Per-member targets: member i's minimum over the two target ensembles.
    q_next = outputs["q_next"]
    expected = batch.rewards + 0.99 * (1 - batch.dones) * np.minimum(q_next[0], q_next[1])
    np.testing.assert_allclose(outputs["targets"], expected, rtol=1e-5, atol=1e-6)
    # The actor's Q: the mean over ensemble 1, minus k std with `pessimism` = k.
    q1, pi = outputs["q1_pi"], outputs["pi"]
    for k, loss in zip((0.0, 1.5), outputs["actor_losses"], strict=True):
        expected = normalized_q_bc_loss(q1.mean(0) - k * q1.std(0), pi, batch.actions, 2.5)[0]
        np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_critic_loss_matches_scipy_and_the_released_biev(trained, batch, outputs):
    """Sum over ensembles of the omega-weighted -logpdf plus 0.1 x the BIEV absolute error."""
    rng = np.random.default_rng(7)
    noise = rng.normal(0, 1, (5, 1)) * np.exp(rng.normal(0, 2, BATCH))  # spread variances: xi > 0
    targets = np.asarray(outputs["targets"], np.float64) + noise
    critic_loss = jax.jit(GGDTD.critic_loss)
    loss, metrics = critic_loss(trained.critic.params, trained, batch, targets.astype(np.float32))
    q, beta = (np.asarray(outputs[name], np.float64) for name in ("q", "beta"))
    reference, xis = 0.0, []
    for c in range(2):
        td = q[c] - targets
        omega = beta[c] / beta[c].sum(axis=0)
        reference += (omega * -stats.gennorm.logpdf(td, beta[c])).sum(axis=0).mean()
        variance = reference_mbbe(td)
        xi = 0.0
        if ebs_of(variance, 0.0) < 16:
            xi = optimize.brentq(lambda x, v=variance: ebs_of(v, x) - 16, 1e-12, 1e9, xtol=1e-14)
        xis.append(xi)
        weights = (1 / (variance + xi)) / (1 / (variance + xi)).sum()
        reference += 0.1 * (weights * np.abs(td).sum(axis=0)).mean()
    assert max(xis) > 0
    np.testing.assert_allclose(loss, reference, rtol=1e-4)
    np.testing.assert_allclose(metrics["biev_xi"], np.mean(xis), rtol=5e-3)


@pytest.mark.parametrize(
    "field,value",
    [("ensemble_size", 1), ("loss_form", "both"), ("uncertainty_weight", -1.0), ("tau", 0.0)],
)
def test_invalid_hyper_parameters_are_refused(field, value):
    with pytest.raises(ConfigError, match=field):
        GGDTD.Config(**{field: value})
