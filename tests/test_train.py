"""The training loop end to end: real Hopper data, real Hopper-v5 evaluation, real checkpoints.

Every run uses small networks (64x64, batch 64) so the tests stay fast; the loop, the agent and
the files are the real ones. Runs that share a seed count share JAX's in-process caches, so the
2-seed runs here come after the first one cheaply.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import gymnasium as gym
import jax
import numpy as np
import pytest
from conftest import HOPPER_DATASET_ID, HOPPER_STEPS, assert_trained_alike

import offrl
from agents import TD3BC
from offrl.agent import DatasetSpec
from offrl.checkpoint import Checkpointer
from offrl.cli import main
from offrl.data.registry import load_task
from offrl.envs.workers import WorkerVectorEnv
from offrl.errors import ConfigError, TrainingDiverged
from offrl.evaluate import ChunkEvaluator, episode_seeds, evaluation_envs, run_episodes
from offrl.fused import init_carry, make_train_chunk, update_compiler_options
from offrl.run_files import LOSSES as LOSSES_FILE
from offrl.run_files import RECORDS
from offrl.train import fit, prepare_data

TASK = f"minari/{HOPPER_DATASET_ID}"
SMALL = {"hidden_dims": (64, 64), "batch_size": 64}
SMALL_FLAGS = ["--hidden-dims", "64", "64", "--batch-size", "64"]
LOSSES = {"actor_loss", "bc_loss", "critic_loss", "lambda", "q_mean"}


def read_records(run_dir: Path, name: str = RECORDS) -> list[dict]:
    return [json.loads(line) for line in (run_dir / name).read_text().splitlines()]


def checkpoint_steps(run_dir: Path) -> list[int]:
    """Finalised checkpoints only: orbax writes into a temporary name, then renames to <step>."""
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under a folder with its bytes: to prove a failed call changed nothing."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def loaded(hopper_dataset):
    return load_task(TASK)


def fit_reference(loaded, run_dir: Path, **changes):
    """`fit` under the reference run's settings (TD3BC, seeds 0 and 1, 200 steps, evaluated in
    Hopper-v5 every 100 with 2 episodes), `changes` applied."""
    settings = {
        "seeds": [0, 1],
        "steps": 200,
        "eval_every": 100,
        "eval_episodes": 2,
        "task": loaded.task,
        "out_dir": run_dir,
        "progress": False,
        **changes,
    }
    return fit(TD3BC, loaded.transitions, TD3BC.Config(**SMALL), **settings)


@pytest.fixture(scope="module")
def two_seed_run(loaded, tmp_path_factory):
    """The reference run: TD3BC, seeds 0 and 1, 200 steps, evaluated in Hopper-v5 every 100."""
    return fit_reference(loaded, tmp_path_factory.mktemp("two-seeds") / "run")


# --- 1. a real run and its folder -----------------------------------------------------------


def test_records_of_a_two_seed_run(loaded, two_seed_run):
    run_dir = two_seed_run.run_dir
    records = read_records(run_dir)
    assert records == json.loads(json.dumps(two_seed_run.records))
    assert [(r["step"], r["seed"]) for r in records] == [(100, 0), (100, 1), (200, 0), (200, 1)]

    # A collected random dataset has no reference scores: no normalised score, raw returns only.
    assert loaded.task.ref_min_score is None and loaded.task.ref_max_score is None
    assert loaded.task.normalized_score(np.array([1.0])) is None
    for record in records:
        assert record["agent"] == "td3bc" and record["task"] == TASK
        assert record["protocol"] == {
            "eval_episodes": 2,
            "eval_every": 100,
            "total_steps": 200,
            "batch_size": 64,
        }
        episodes = record["episode_returns"]
        assert len(episodes) == 2 and all(math.isfinite(r) for r in episodes)
        assert record["return"] == pytest.approx(np.mean(episodes), rel=1e-12)
        assert record["return_std"] == pytest.approx(np.std(episodes), rel=1e-9, abs=1e-12)
        # Two episodes per seed start from different env seeds, so they differ.
        assert episodes[0] != episodes[1]
        assert record["normalized_score"] is None
        assert set(record["losses"]) == LOSSES
        assert all(math.isfinite(v) for v in record["losses"].values()), record["losses"]
        assert record["losses"]["critic_loss"] > 0
        assert math.isfinite(record["updates_per_s"]) and record["updates_per_s"] > 0
    # One compiled program for both seeds: one throughput and wall time per chunk.
    assert records[0]["updates_per_s"] == records[1]["updates_per_s"]
    assert 0 < records[0]["wall_s"] == records[1]["wall_s"] < records[2]["wall_s"]
    # The seeds are different runs.
    assert records[0]["losses"] != records[1]["losses"]
    assert records[0]["episode_returns"] != records[1]["episode_returns"]


def test_manifest_of_a_two_seed_run(loaded, two_seed_run):
    manifest = json.loads((two_seed_run.run_dir / "run.json").read_text())
    assert manifest["agent"] == "td3bc" and manifest["task"] == TASK
    assert manifest["seeds"] == [0, 1]
    assert (manifest["steps"], manifest["eval_every"], manifest["eval_episodes"]) == (200, 100, 2)
    assert manifest["checksum"] == loaded.checksum
    assert manifest["dataset_size"] == HOPPER_STEPS == loaded.transitions.size
    assert manifest["spec"] == {"obs_dim": 11, "action_dim": 3, "max_action": 1.0}
    config = manifest["config"]
    assert config["hidden_dims"] == [64, 64] and config["batch_size"] == 64
    assert config["alpha"] == 2.5 and config["tau"] == 0.005 and config["policy_freq"] == 2
    observations = np.asarray(loaded.transitions.observations, np.float64)
    np.testing.assert_allclose(manifest["normalizer"]["mean"], observations.mean(0), rtol=1e-5)
    np.testing.assert_allclose(manifest["normalizer"]["std"], observations.std(0) + 1e-3, rtol=1e-5)
    assert manifest["offrl_version"] == offrl.__version__
    assert "git_commit" in manifest


def test_checkpoints_hold_the_final_state_that_was_evaluated(two_seed_run):
    """Restore checkpoint 200 and replay its evaluation by hand, one gymnasium env at a time."""
    run_dir = two_seed_run.run_dir
    assert checkpoint_steps(run_dir) == [100, 200]
    checkpointer = Checkpointer(run_dir)
    restored, meta = checkpointer.restore(200, two_seed_run.carry)
    checkpointer.close()
    assert meta == {"step": 200}
    for saved, final in zip(
        jax.tree.leaves(restored), jax.tree.leaves(two_seed_run.carry), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(saved), np.asarray(final))

    manifest = json.loads((run_dir / "run.json").read_text())
    mean = np.asarray(manifest["normalizer"]["mean"], np.float32)
    std = np.asarray(manifest["normalizer"]["std"], np.float32)
    actor = restored.agent.actor
    policy = jax.jit(lambda params, obs: actor.apply_fn(params, obs))
    final_records = {r["seed"]: r for r in read_records(run_dir) if r["step"] == 200}
    for index, seed in enumerate(manifest["seeds"]):
        params = jax.tree.map(lambda x, i=index: x[i], actor.params)
        returns = []
        for env_seed in episode_seeds(seed, 2):
            env = gym.make("Hopper-v5")
            observation, _ = env.reset(seed=env_seed)
            total, done = 0.0, False
            while not done:
                normalized = (observation.astype(np.float32) - mean) / std
                action = np.asarray(policy(params, normalized[None]))[0]
                observation, reward, terminated, truncated, _ = env.step(action)
                total += reward
                done = terminated or truncated
            env.close()
            returns.append(total)
        np.testing.assert_allclose(returns, final_records[seed]["episode_returns"], rtol=1e-4)


# --- 2. seeds are independent ---------------------------------------------------------------


def test_seed_zero_of_two_equals_a_one_seed_run(loaded, two_seed_run):
    alone = fit(
        TD3BC,
        loaded.transitions,
        TD3BC.Config(**SMALL),
        seeds=[0],
        steps=200,
        eval_every=100,
        eval_episodes=2,
        task=loaded.task,
        progress=False,
    )
    together = [r for r in two_seed_run.records if r["seed"] == 0]
    assert [r["step"] for r in alone.records] == [r["step"] for r in together] == [100, 200]
    for one, two in zip(alone.records, together, strict=True):
        assert one["seed"] == 0
        np.testing.assert_allclose(one["episode_returns"], two["episode_returns"], rtol=1e-4)
        np.testing.assert_allclose(one["return"], two["return"], rtol=1e-4)
        assert set(one["losses"]) == set(two["losses"])
        for name in one["losses"]:
            np.testing.assert_allclose(one["losses"][name], two["losses"][name], rtol=1e-4)
    # ... and seed 1 of the same 2-seed run is not seed 0.
    seed_one = [r for r in two_seed_run.records if r["seed"] == 1]
    for zero, one in zip(together, seed_one, strict=True):
        assert not np.allclose(zero["episode_returns"], one["episode_returns"], rtol=1e-3)
        assert not np.isclose(zero["losses"]["critic_loss"], one["losses"]["critic_loss"])


# --- 2b. the scan's compiler options change its speed, not its math -------------------------


def test_the_scan_on_cpu_takes_eigen_dots_with_the_numbers_of_xla_default_dots(loaded):
    """XLA's CPU default sends dots to YNNPACK; the scan asks for Eigen's, faster at batch 256 on
    some CPUs (`make bench-speed`). Both are float32 matmuls that round differently, so the claim
    is that 50 updates train the same function: the per-step losses agree to float32 rounding and
    every tensor of the carry lies as close as `assert_trained_alike` asks."""
    if update_compiler_options() is None:
        pytest.skip("the backend is not a CPU with YNNPACK dots: the scan takes XLA's defaults")
    config = TD3BC.Config()
    data, _ = prepare_data(loaded.transitions, config)
    spec = DatasetSpec(data.obs_dim, data.action_dim)
    carry = init_carry(TD3BC, spec, config, [0])
    compiled = {
        xla_dots: make_train_chunk(TD3BC, carry, 50, config.batch_size, xla_default_dots=xla_dots)
        .lower(carry, data, None)
        .compile()
        for xla_dots in (False, True)
    }
    assert "__ynn_fusion" not in compiled[False].as_text()
    assert "__ynn_fusion" in compiled[True].as_text()
    (eigen, eigen_metrics), (xla, xla_metrics) = (
        compiled[k](carry, data, None) for k in (False, True)
    )
    assert_trained_alike(eigen, xla, carry)
    # A loss is a mean over the batch: rounding moves it by ~1e-6 of itself, not 1e-4.
    for name in ("critic_loss", "actor_loss"):
        np.testing.assert_allclose(eigen_metrics[name], xla_metrics[name], rtol=1e-4)


# --- 2c. scans of `log_every` updates: steady loss records and a moving bar, same numbers ------


@pytest.fixture(scope="module")
def cut_run(loaded, tmp_path_factory):
    """The reference run again, each chunk of 100 updates cut into scans of 30, 30, 30 and 10,
    with its progress bar drawn into a string."""
    run_dir = tmp_path_factory.mktemp("cut") / "run"
    drawn = io.StringIO()
    with contextlib.redirect_stderr(drawn):
        result = fit_reference(loaded, run_dir, log_every=30, progress=True)
    return result, drawn.getvalue()


TIMINGS = ("updates_per_s", "wall_s")


def timeless(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMINGS} for r in records]


def assert_same_numbers(result, reference) -> None:
    """Equal final states and records (losses, returns, episode returns), timings aside."""
    leaves = zip(jax.tree.leaves(result.carry), jax.tree.leaves(reference.carry), strict=True)
    for ours, theirs in leaves:
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    assert timeless(result.records) == timeless(reference.records)


def test_cutting_chunks_into_scans_changes_no_number(two_seed_run, cut_run):
    assert_same_numbers(cut_run[0], two_seed_run)


def test_evaluating_while_the_next_chunk_trains_changes_no_number(loaded, two_seed_run, tmp_path):
    """`two_seed_run` evaluated each chunk on the worker thread while the next one trained; in
    turn, as here, every state, record, loss line and checkpoint is the same."""
    result = fit_reference(loaded, tmp_path / "run", overlap_evaluation=False)
    assert_same_numbers(result, two_seed_run)
    assert timeless(read_records(result.run_dir)) == timeless(read_records(two_seed_run.run_dir))
    assert read_records(result.run_dir, LOSSES_FILE) == read_records(
        two_seed_run.run_dir, LOSSES_FILE
    )
    assert checkpoint_steps(result.run_dir) == checkpoint_steps(two_seed_run.run_dir) == [100, 200]


def test_the_chunk_evaluator_runs_beside_its_caller_in_order():
    started, release = threading.Event(), threading.Event()

    def evaluation(name: str) -> str:
        started.set()
        assert release.wait(timeout=30), "the caller never went on while this ran"
        return f"{name} on {threading.current_thread().name}"

    with ChunkEvaluator() as evaluator:
        first = evaluator.start(lambda: evaluation("first"))
        second = evaluator.start(lambda: "second")
        assert started.wait(timeout=30)
        release.set()  # only reachable because start() returned while `evaluation` waits
        assert first.result().startswith("first on offrl-eval")
        assert second.result() == "second"
    with ChunkEvaluator(overlap=False) as evaluator:
        failed = evaluator.start(lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            failed.result()


def test_evaluation_envs_in_worker_processes_play_the_episodes_of_one_process(loaded):
    """The same seeds and a policy that reads the observations: the same returns whether the
    envs step here or in two worker processes (where an ended env restarts at once)."""
    data = loaded.transitions
    weights = np.random.default_rng(0).normal(size=(data.obs_dim, data.action_dim))

    def policy(observations: np.ndarray) -> np.ndarray:
        return np.tanh(observations @ weights)

    here = evaluation_envs(loaded.task.env_spec, 4, workers=1)
    apart = evaluation_envs(loaded.task.env_spec, 4, workers=2)
    assert isinstance(apart, WorkerVectorEnv) and len(apart.envs.processes) == 2
    try:
        returns = [run_episodes(policy, envs, [0, 1], 2) for envs in (here, apart)]
    finally:
        here.close()
        apart.close()
    np.testing.assert_array_equal(returns[0], returns[1])
    assert len(np.unique(returns[0])) == 4  # four different episodes
    with pytest.raises(ConfigError, match="--eval-workers must be >= 1, got 0"):
        evaluation_envs(loaded.task.env_spec, 4, workers=0)


def test_losses_are_recorded_after_every_scan(cut_run):
    result, _ = cut_run
    losses = read_records(result.run_dir, LOSSES_FILE)
    steps = [30, 60, 90, 100, 130, 160, 190, 200]
    assert [(r["step"], r["seed"]) for r in losses] == [(s, seed) for s in steps for seed in (0, 1)]
    assert all(set(r["losses"]) == LOSSES for r in losses)
    # Each record averages the updates since the one before: weighted by their counts, a
    # chunk's windows give the chunk's mean (the critic loss is computed at every update).
    for record in result.records:
        step, seed = record["step"], record["seed"]
        windows = [r for r in losses if r["seed"] == seed and step - 100 < r["step"] <= step]
        counts = np.diff([step - 100] + [r["step"] for r in windows])
        means = [r["losses"]["critic_loss"] for r in windows]
        assert np.dot(counts, means) / 100 == pytest.approx(record["losses"]["critic_loss"])
    assert losses[0]["losses"] != losses[2]["losses"]  # a window per record, not one repeated


def test_the_bar_moves_every_scan_and_labels_its_fields(cut_run):
    result, drawn = cut_run
    states = [line for line in re.split(r"[\r\n]", drawn) if "td3bc" in line]
    assert any("compiling the 30-update step" in s for s in states)
    assert any("compiling the 10-update step" in s for s in states)
    final = states[-1]
    assert "200/200" in final
    last_window = read_records(result.run_dir, LOSSES_FILE)[-2:]
    mean_critic = np.mean([r["losses"]["critic_loss"] for r in last_window])
    assert f"loss critic={mean_critic:.3g} actor=" in final
    mean_return = np.mean([r["return"] for r in result.records[-2:]])
    assert final.rstrip().endswith(f"return={mean_return:.1f}]")
    assert final.count("upd/s") == 1  # tqdm's own rate, no second one


# --- 3. an interrupted run resumes to the numbers of an uninterrupted one --------------------


def train_argv(out: Path) -> list[str]:
    return [
        "train",
        "--task",
        TASK,
        "--steps",
        "600",
        "--eval-every",
        "100",
        "--eval-episodes",
        "2",
        "--seeds",
        "2",
        "--out",
        str(out),
        "--no-progress",
        *SMALL_FLAGS,
    ]


def test_killed_run_resumes_to_the_uninterrupted_result(hopper_dataset, tmp_path, capsys):
    a, b = tmp_path / "A", tmp_path / "B"
    offrl_bin = Path(sys.executable).with_name("offrl")
    log = (tmp_path / "killed.log").open("w")
    # The child inherits MINARI_DATASETS_PATH, pointing at the session cache with the dataset.
    process = subprocess.Popen(
        [str(offrl_bin), *train_argv(a)], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 240
    try:
        while not any(step >= 100 for step in checkpoint_steps(a)):
            assert process.poll() is None, (tmp_path / "killed.log").read_text()
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        log.close()
    assert process.returncode == -signal.SIGKILL
    killed_at = max(checkpoint_steps(a))
    killed_records = read_records(a)
    assert 100 <= killed_at < 600
    assert 2 <= len(killed_records) < 12, "the run was not interrupted"
    assert {r["step"] for r in killed_records} <= set(range(100, 601, 100))

    assert main(train_argv(a)) == 0  # resumes from the last checkpoint to step 600
    assert main(train_argv(b)) == 0  # never interrupted
    out = capsys.readouterr().out
    assert f"run {a}: td3bc on {TASK}" in out and f"run {b}: td3bc on {TASK}" in out

    resumed, uninterrupted = read_records(a), read_records(b)
    expected_keys = [(step, seed) for step in range(100, 601, 100) for seed in (0, 1)]
    assert [(r["step"], r["seed"]) for r in resumed] == expected_keys
    assert [(r["step"], r["seed"]) for r in uninterrupted] == expected_keys
    # The run's wall time goes on across the kill, from the checkpoint's records.
    walls = [r["wall_s"] for r in resumed]
    assert walls == sorted(walls) and walls[0] > 0
    assert timeless(resumed) == timeless(uninterrupted)  # returns, losses: exactly equal
    assert all(math.isfinite(r["updates_per_s"]) for r in (*resumed, *uninterrupted))
    # The loss records the killed process wrote past its checkpoint were cut on resuming.
    assert read_records(a, LOSSES_FILE) == read_records(b, LOSSES_FILE)
    # What the killed process wrote before its checkpoint is part of that identical history.
    for record in killed_records:
        if record["step"] <= killed_at:
            assert timeless([record])[0] in timeless(uninterrupted)
            assert record in resumed
    assert checkpoint_steps(a) == checkpoint_steps(b) == [500, 600]  # the last two are kept
    assert [p.name for p in (a / "checkpoints").iterdir() if not p.name.isdigit()] == []


def test_crash_between_records_and_checkpoint_is_replayed(loaded, two_seed_run, tmp_path):
    """Records of step 200 written, its checkpoint lost: resuming drops and redoes them."""
    run_dir = tmp_path / "run"
    shutil.copytree(two_seed_run.run_dir, run_dir)
    shutil.rmtree(run_dir / "checkpoints" / "200")
    # A torn last line, as a crash in the middle of an append leaves it.
    with (run_dir / "records.jsonl").open("a") as f:
        f.write('{"step": 300, "se')
    result = fit_reference(loaded, run_dir)
    assert [(r["step"], r["seed"]) for r in result.records] == [(200, 0), (200, 1)]
    replayed, original = read_records(run_dir), read_records(two_seed_run.run_dir)
    assert timeless(replayed) == timeless(original)
    assert read_records(run_dir, LOSSES_FILE) == read_records(two_seed_run.run_dir, LOSSES_FILE)
    assert checkpoint_steps(run_dir) == [100, 200]


def records_at_checkpoint_100(finished: Path, run_dir: Path, wall_s: float | None) -> None:
    """`finished` copied to `run_dir` as a kill after step 100's checkpoint leaves it, its step-100
    records holding `wall_s` (None: records of an offrl before the field)."""
    shutil.copytree(finished, run_dir)
    shutil.rmtree(run_dir / "checkpoints" / "200")
    kept = [r for r in read_records(finished) if r["step"] == 100]
    for record in kept:
        record.pop("wall_s")
        if wall_s is not None:
            record["wall_s"] = wall_s
    (run_dir / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))


def test_a_resumed_run_counts_the_wall_time_of_its_earlier_invocations(
    loaded, two_seed_run, tmp_path
):
    carried = tmp_path / "carried"
    records_at_checkpoint_100(two_seed_run.run_dir, carried, wall_s=1000.0)
    began = time.perf_counter()
    fit_reference(loaded, carried)
    took = time.perf_counter() - began
    walls = {(r["step"], r["seed"]): r["wall_s"] for r in read_records(carried)}
    assert walls[100, 0] == walls[100, 1] == 1000.0
    assert 1000.0 < walls[200, 0] == walls[200, 1] <= 1000.0 + took

    # Resumed from records without the field: the run's earlier time is unknown, so no record
    # claims a total.
    unknown = tmp_path / "unknown"
    records_at_checkpoint_100(two_seed_run.run_dir, unknown, wall_s=None)
    fit_reference(loaded, unknown)
    assert all("wall_s" not in r for r in read_records(unknown))


# --- 4. divergence --------------------------------------------------------------------------

# Rewards scaled by 2e18 drive the critic's parameters to overflow float32 after a few hundred
# updates (around step 275-280 for seeds 0 and 1 here) while every update's losses stay finite
# numbers before: the run diverges in its third chunk of 100.
DIVERGING = TD3BC.Config(**SMALL, reward_scale=2e18)


def diverged_step(message: str) -> int:
    match = re.search(r"diverged at step (\d+)", message)
    assert match, message
    return int(match.group(1))


def fit_diverging(loaded, run_dir: Path | None, steps: int, config=DIVERGING):
    return fit(
        TD3BC,
        loaded.transitions,
        config,
        seeds=[0, 1],
        steps=steps,
        eval_every=100,
        eval_episodes=1,
        out_dir=run_dir,
        progress=False,
    )


@pytest.fixture(scope="module")
def diverged_run(loaded, tmp_path_factory) -> tuple[Path, str]:
    run_dir = tmp_path_factory.mktemp("diverged") / "run"
    with pytest.raises(TrainingDiverged) as error:
        fit_diverging(loaded, run_dir, steps=600)
    return run_dir, str(error.value)


def test_divergence_stops_and_keeps_the_last_good_checkpoint(diverged_run):
    run_dir, message = diverged_run
    step = diverged_step(message)
    good = (step - 1) // 100 * 100
    assert good >= 100, f"expected a divergence after the first chunk: {message}"
    for loss in ("critic_loss=", "actor_loss=", "bc_loss=", "q_mean="):
        assert loss in message
    assert f"last good checkpoint (step {good}) is kept in {run_dir}" in message
    # The folder holds the run up to the last good chunk and nothing from the failed one.
    assert checkpoint_steps(run_dir) == sorted({max(good - 100, 100), good})
    records = read_records(run_dir)
    assert [(r["step"], r["seed"]) for r in records] == [
        (s, seed) for s in range(100, good + 1, 100) for seed in (0, 1)
    ]
    losses = read_records(run_dir, LOSSES_FILE)
    assert max(r["step"] for r in losses) == good
    assert sorted(p.name for p in run_dir.iterdir()) == [
        ".lock",
        "checkpoints",
        "losses.jsonl",
        "records.jsonl",
        "run.json",
    ]
    assert [p.name for p in (run_dir / "checkpoints").iterdir() if not p.name.isdigit()] == []


def test_divergence_names_the_earliest_step_over_all_seeds(loaded, diverged_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(diverged_run[0], run_dir)
    step = diverged_step(diverged_run[1])
    # Resuming up to the step before the named one: every seed must still be finite there.
    result = fit_diverging(loaded, run_dir, steps=step - 1)
    assert result.records[-1]["step"] == step - 1


def test_divergence_in_the_first_chunk_writes_no_checkpoint(loaded, tmp_path):
    run_dir = tmp_path / "run"
    config = TD3BC.Config(**SMALL, reward_scale=1e20)  # the first update overflows
    with pytest.raises(TrainingDiverged) as error:
        fit_diverging(loaded, run_dir, steps=200, config=config)
    message = str(error.value)
    assert diverged_step(message) == 1
    assert "critic_loss=inf" in message and "no checkpoint was written" in message
    assert checkpoint_steps(run_dir) == []
    assert not (run_dir / "records.jsonl").exists()


def test_recorded_loss_averages_do_not_overflow(diverged_run):
    run_dir, message = diverged_run
    # Even the diverging update's own losses are finite numbers: parameters overflowed first.
    losses = dict(re.findall(r"(\w+)=([-+.\w]+)", message.split("losses at that step")[1]))
    assert math.isfinite(float(losses["critic_loss"])) and float(losses["critic_loss"]) > 1e30
    text = (run_dir / "records.jsonl").read_text()
    assert "Infinity" not in text
    assert all(math.isfinite(v) for r in read_records(run_dir) for v in r["losses"].values())


def test_an_infinite_loss_is_never_recorded(loaded, tmp_path):
    # With rewards of ~3e18 the squared TD errors overflow float32 from the first update, while
    # Adam's normalised steps keep the parameters finite for another ~230 updates.
    config = TD3BC.Config(**SMALL, reward_scale=3e18)
    run_dir = tmp_path / "run"
    with contextlib.suppress(TrainingDiverged):  # stopping is one acceptable outcome
        fit_diverging(loaded, run_dir, steps=100, config=config)
    records = run_dir / "records.jsonl"
    text = records.read_text() if records.exists() else ""
    assert "Infinity" not in text and "NaN" not in text
    for line in text.splitlines():
        assert all(math.isfinite(v) for v in json.loads(line)["losses"].values())


# --- 5. resuming needs the same settings ----------------------------------------------------


@pytest.fixture
def finished_copy(two_seed_run, tmp_path) -> Path:
    run_dir = tmp_path / "run"
    shutil.copytree(two_seed_run.run_dir, run_dir)
    return run_dir


@pytest.mark.parametrize(
    ("key", "change"),
    [
        ("config", {"config": TD3BC.Config(**SMALL, alpha=3.0)}),
        ("seeds", {"seeds": [1, 2]}),
        ("eval_episodes", {"steps": 200, "eval_every": 100, "eval_episodes": 1}),
        ("eval_every", {"steps": 200, "eval_every": 50, "eval_episodes": 2}),
        ("task", {"task": None}),
    ],
)
def test_resuming_with_other_settings_is_refused(loaded, finished_copy, key, change):
    before = snapshot(finished_copy)
    arguments = {
        "config": TD3BC.Config(**SMALL),
        "seeds": [0, 1],
        "steps": 400,
        "eval_every": 100,
        "eval_episodes": 2,
        "task": loaded.task,
    } | change
    with pytest.raises(ConfigError, match=rf"holds a run with other settings: {key}\b") as error:
        fit(
            TD3BC,
            loaded.transitions,
            arguments["config"],
            seeds=arguments["seeds"],
            steps=arguments["steps"],
            eval_every=arguments["eval_every"],
            eval_episodes=arguments["eval_episodes"],
            task=arguments["task"],
            out_dir=finished_copy,
            progress=False,
        )
    if key == "config":  # the field that differs, not two whole configs
        assert "config.alpha 2.5 there, 3.0 now; resume" in str(error.value)
        assert "hidden_dims" not in str(error.value)
    assert "pass a new --out" in str(error.value)
    assert snapshot(finished_copy) == before


def test_resuming_on_other_data_is_refused(loaded, finished_copy):
    before = snapshot(finished_copy)
    fewer = jax.tree.map(lambda x: x[:-1], loaded.transitions)
    with pytest.raises(ConfigError, match="other settings: checksum "):
        fit(
            TD3BC,
            fewer,
            TD3BC.Config(**SMALL),
            seeds=[0, 1],
            steps=200,
            eval_every=100,
            eval_episodes=2,
            task=loaded.task,
            out_dir=finished_copy,
            progress=False,
        )
    assert snapshot(finished_copy) == before


def test_a_finished_run_is_not_trained_again(loaded, finished_copy):
    records = (finished_copy / "records.jsonl").read_bytes()
    result = fit(
        TD3BC,
        loaded.transitions,
        TD3BC.Config(**SMALL),
        seeds=[0, 1],
        steps=200,
        eval_every=100,
        eval_episodes=2,
        task=loaded.task,
        out_dir=finished_copy,
        progress=False,
    )
    assert result.records == []
    assert (finished_copy / "records.jsonl").read_bytes() == records
    assert checkpoint_steps(finished_copy) == [100, 200]


def test_a_folder_that_is_not_a_run_is_refused(loaded, tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match=r"not an offrl run folder \(no run.json\)"):
        fit(
            TD3BC,
            loaded.transitions,
            TD3BC.Config(**SMALL),
            seeds=[0, 1],
            steps=100,
            eval_every=100,
            eval_episodes=1,
            out_dir=folder,
            progress=False,
        )
    assert snapshot(folder) == {"notes.txt": b"keep me"}
