"""The online SAC trainer behind offrl's behaviour policies."""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from offrl.agent import DatasetSpec
from offrl.behavior import sac
from offrl.data.transitions import Transitions
from offrl.errors import ConfigError
from offrl.nets import tanh_gaussian_sample

SMALL = [
    "--steps", "600", "--start-steps", "200", "--update-after", "200", "--update-every", "50",
    "--eval-every", "200", "--checkpoint-every", "200", "--eval-episodes", "2", "--no-progress",
]  # fmt: skip


def test_tanh_gaussian_log_density_matches_the_change_of_variables():
    mean = jnp.array([[0.3, -0.5], [1.0, 0.0]])
    log_std = jnp.array([[-0.5, 0.2], [0.0, -1.0]])
    actions, log_prob = tanh_gaussian_sample(mean, log_std, jax.random.PRNGKey(0))
    pre_tanh = np.arctanh(np.asarray(actions, np.float64))
    expected = (
        stats.norm.logpdf(pre_tanh, np.asarray(mean), np.exp(np.asarray(log_std)))
        - np.log(1 - np.tanh(pre_tanh) ** 2)
    ).sum(axis=-1)
    np.testing.assert_allclose(log_prob, expected, rtol=1e-4, atol=1e-4)


def test_sac_update_moves_critic_actor_and_temperature():
    spec = DatasetSpec(obs_dim=5, action_dim=2)
    state = sac.init(jax.random.PRNGKey(0), spec, sac.Config())
    rng = np.random.default_rng(0)
    batch = Transitions(
        observations=jnp.asarray(rng.standard_normal((256, 5)), jnp.float32),
        actions=jnp.asarray(rng.uniform(-1, 1, (256, 2)), jnp.float32),
        rewards=jnp.asarray(rng.standard_normal(256), jnp.float32),
        next_observations=jnp.asarray(rng.standard_normal((256, 5)), jnp.float32),
        dones=jnp.zeros(256, jnp.float32),
    )
    new, metrics = jax.jit(sac.update)(state, batch, jax.random.PRNGKey(1))
    assert int(new.step) == 1
    assert all(np.isfinite(float(v)) for v in metrics.values())
    for before, after in (
        (state.actor.params, new.actor.params),
        (state.critic.params, new.critic.params),
        (state.critic.target_params, new.critic.target_params),
        (state.log_temperature.params, new.log_temperature.params),
    ):
        assert not all(jax.tree.leaves(jax.tree.map(np.array_equal, before, after)))
    # High entropy at initialisation is above the target, so the temperature goes down.
    assert float(metrics["entropy"]) > new.target_entropy
    assert new.log_temperature.params["log_temperature"] < 0


def test_invalid_sac_settings_are_refused():
    with pytest.raises(ConfigError, match="tau"):
        sac.Config(tau=0.0)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "offrl.cli", "behavior", "train", *args],
        capture_output=True,
        text=True,
    )


def test_behavior_run_writes_snapshots_records_and_resumes(tmp_path):
    out = tmp_path / "hopper"
    done = run_cli("--env", "Hopper-v5", "--out", str(out), *SMALL)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [200, 400, 600]
    assert all(np.isfinite(r["eval_return"]) for r in records)
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == [
        "step_00000200.msgpack", "step_00000400.msgpack", "step_00000600.msgpack",
    ]  # fmt: skip
    # A finished run started again does nothing and keeps its records.
    again = run_cli("--env", "Hopper-v5", "--out", str(out), *SMALL)
    assert again.returncode == 0, again.stderr
    assert (out / "records.jsonl").read_text().count("\n") == 3
    # Other settings on the same folder are refused with a message naming the fix.
    other = run_cli("--env", "Hopper-v5", "--out", str(out), *SMALL, "--seed", "3")
    assert other.returncode != 0
    assert "other settings" in other.stderr
