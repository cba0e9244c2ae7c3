"""Trained policies to take away: from a run folder, from a fit result, and as an exported file
that runs with JAX alone; all three give the same actions on raw observations."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from conftest import HOPPER_DATASET_ID

from agents import TD3BC
from offrl.cli import main
from offrl.data.registry import load_task
from offrl.errors import ConfigError
from offrl.policy import Policy, load_exported, load_policy
from offrl.train import fit

TASK = f"minari/{HOPPER_DATASET_ID}"


@pytest.fixture(scope="module")
def trained(hopper_dataset, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("policy") / "run"
    transitions = load_task(TASK).transitions
    config = TD3BC.Config(hidden_dims=(32, 32), batch_size=32)
    result = fit(
        TD3BC,
        transitions,
        config,
        seeds=(3, 5),
        steps=40,
        eval_every=20,
        out_dir=run_dir,
        progress=False,
    )
    return run_dir, result, np.asarray(transitions.observations[:50])


def test_a_run_folders_seed_acts_as_the_fit_result_did(trained):
    run_dir, result, observations = trained
    restored = load_policy(run_dir, seed=5)
    in_memory = Policy.from_fit(TD3BC, result, seed_index=1)
    assert restored.step == 40
    np.testing.assert_array_equal(restored(observations), in_memory(observations))
    # One observation is a batch of one: another matmul shape, so rounding may differ.
    np.testing.assert_allclose(restored(observations[0]), in_memory(observations)[0], atol=1e-6)
    first = load_policy(run_dir)  # default: the run's first seed
    assert not np.array_equal(first(observations), restored(observations))


def test_the_normaliser_is_inside_the_policy(trained):
    run_dir, result, observations = trained
    policy = load_policy(run_dir, seed=3)
    normalized = (observations - result.normalizer.mean) / result.normalizer.std
    direct = TD3BC.act(policy.state, normalized)
    np.testing.assert_allclose(policy(observations), direct, rtol=1e-6, atol=1e-6)


def test_an_exported_policy_runs_with_jax_alone(trained, tmp_path):
    run_dir, _, observations = trained
    out = tmp_path / "hopper.policy"
    assert main(["export", str(run_dir), "--seed", "5", "--out", str(out)]) == 0
    header, _, payload = out.read_bytes().partition(b"\n")
    exported = jax.export.deserialize(bytearray(payload))  # what a user without offrl does
    expected = load_policy(run_dir, seed=5)(observations)
    np.testing.assert_allclose(np.asarray(exported.call(observations)), expected, atol=1e-6)
    metadata = json.loads(header)
    assert (metadata["seed"], metadata["step"], metadata["agent"]) == (5, 40, "td3bc")
    act, _ = load_exported(out)
    np.testing.assert_allclose(act(observations[:7]), expected[:7], atol=1e-6)
    np.testing.assert_allclose(act(observations[0]), expected[0], atol=1e-6)


def test_a_seed_or_step_the_run_lacks_is_one_clear_error(trained, tmp_path, capsys):
    run_dir, _, _ = trained
    with pytest.raises(ConfigError, match=r"trained seeds \[3, 5\], not seed 4"):
        load_policy(run_dir, seed=4)
    with pytest.raises(ConfigError, match="no checkpoint at step 30"):
        load_policy(run_dir, step=30)
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "p")]) == 1
    err = capsys.readouterr().err
    assert "not a run folder" in err and "Traceback" not in err
