"""`offrl peer`: d3rlpy trained on exactly offrl's rows, resumable, stored as peer records."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import HOPPER_DATASET_ID

from benchmarks import peer, peer_learner, peer_values, store
from benchmarks.configs import select
from offrl.data.registry import load_task
from offrl.data.transitions import Transitions
from offrl.errors import ConfigError
from offrl.train import Protocol

TASK = f"minari/{HOPPER_DATASET_ID}"


def table(observations, next_observations, dones) -> Transitions:
    n = len(dones)
    return Transitions(
        observations=np.asarray(observations, np.float32).reshape(n, 1),
        actions=np.zeros((n, 1), np.float32),
        rewards=np.zeros(n, np.float32),
        next_observations=np.asarray(next_observations, np.float32).reshape(n, 1),
        dones=np.asarray(dones, np.float32),
    )


def test_episodes_end_at_terminals_and_where_the_next_row_does_not_continue():
    # rows: 0->1->2 (terminal), 5->6 (cut: next row starts at 9), 9->10->11 (end of table)
    rows = table([0, 1, 2, 5, 9, 10], [1, 2, 3, 6, 10, 11], [0, 0, 1, 0, 0, 0])
    assert peer_learner.episode_bounds(rows) == [(0, 3, True), (3, 4, False), (4, 6, False)]
    # A terminal row ends its episode even when the next row happens to start from its next state.
    rows = table([0, 1, 2], [1, 2, 3], [0, 1, 0])
    assert peer_learner.episode_bounds(rows) == [(0, 2, True), (2, 3, False)]


def test_episode_bounds_cover_every_row_of_a_real_dataset_once(hopper_dataset):
    transitions = load_task(TASK).transitions
    bounds = peer_learner.episode_bounds(transitions)
    assert [b[0] for b in bounds[1:]] == [b[1] for b in bounds[:-1]]
    assert bounds[0][0] == 0 and bounds[-1][1] == transitions.size
    for start, stop, terminated in bounds:
        np.testing.assert_array_equal(
            transitions.next_observations[start : stop - 1],
            transitions.observations[start + 1 : stop],
        )
        assert terminated == bool(transitions.dones[stop - 1])
    assert any(t for *_, t in bounds) and len(bounds) > 10


@pytest.mark.slow
def test_the_peers_extra_resolves_beside_offrls_own_requirements():
    """d3rlpy 2.8.1 pins gymnasium 1.0.0, below ours: pip must find a consistent set."""
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", f"{root}[peers]"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]


def test_the_peer_trains_the_seeds_asked_for(tmp_path):
    pytest.importorskip("d3rlpy", reason="a peer run's config names d3rlpy's version")
    profile = select(peer.profile_named("repro"), None, ("offrl/hopper/medium-v0",), (3, 4))
    checksums = {"offrl/hopper/medium-v0": "0" * 64}
    specs = peer.plan(profile, checksums, tmp_path, ("td3bc",))
    assert [(s.agent, s.seed) for s in specs] == [("td3bc", 3), ("td3bc", 4)]
    assert specs[0].run_dir(tmp_path) != specs[1].run_dir(tmp_path)


def test_the_peer_refuses_negative_seeds_before_it_needs_d3rlpy(tmp_path):
    with pytest.raises(ConfigError, match="--seeds -1: give one or more seeds >= 0"):
        peer.main(["--seeds", "-1", "--results", str(tmp_path)])


@pytest.mark.slow
def test_d3rlpys_buffer_yields_exactly_our_rows(hopper_dataset):
    pytest.importorskip("d3rlpy", reason="needs offrl[peers]")
    transitions = load_task(TASK).transitions
    buffer = peer_learner.replay_buffer(transitions)
    picked = [
        buffer.transition_picker(episode, i)
        for episode in buffer.episodes
        for i in range(episode.transition_count)
    ]
    assert len(picked) == transitions.size
    dones = np.array([t.terminal for t in picked])
    np.testing.assert_array_equal(dones, transitions.dones)
    np.testing.assert_array_equal([t.observation for t in picked], transitions.observations)
    np.testing.assert_array_equal([t.action for t in picked], transitions.actions)
    np.testing.assert_array_equal([t.reward[0] for t in picked], transitions.rewards)
    live = dones == 0  # d3rlpy gives a terminal row a zero next state: it is never bootstrapped
    next_observations = np.array([t.next_observation for t in picked])
    np.testing.assert_array_equal(next_observations[live], transitions.next_observations[live])


@pytest.mark.slow
def test_a_peer_run_killed_after_an_evaluation_resumes_to_the_same_scores(
    hopper_dataset, tmp_path, monkeypatch
):
    pytest.importorskip("d3rlpy", reason="needs offrl[peers]")
    checksum = load_task(TASK).checksum
    spec = peer.PeerSpec("td3bc", TASK, 3, Protocol(40, 20, 2), checksum)
    whole = peer.train_peer(spec, tmp_path / "whole", progress=False)

    evaluate, calls = peer._evaluate, []

    def dies_at_second_evaluation(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return evaluate(*args)

    monkeypatch.setattr(peer, "_evaluate", dies_at_second_evaluation)
    with pytest.raises(KeyboardInterrupt):
        peer.train_peer(spec, tmp_path / "killed", progress=False)
    monkeypatch.setattr(peer, "_evaluate", evaluate)
    run_dir = spec.run_dir(tmp_path / "killed")
    assert sorted(p.name for p in run_dir.glob("*-*")) == ["model-20.d3", "rng-20.pkl"]
    progress = json.loads((run_dir / "progress.json").read_text())
    assert progress["evaluations"][0]["wall_s"] > 0
    progress["evaluations"][0]["wall_s"] = 1000.0  # as if the killed invocation had been slow
    (run_dir / "progress.json").write_text(json.dumps(progress))
    began = time.perf_counter()
    resumed = peer.train_peer(spec, tmp_path / "killed", progress=False)
    took = time.perf_counter() - began

    assert resumed.curve_steps == whole.curve_steps == [20, 40]
    assert resumed.curve_scores == whole.curve_scores
    assert resumed.is_peer and resumed.implementation == "d3rlpy"
    assert resumed.config["library"].startswith("d3rlpy==") and resumed.config["alpha"] == 2.5
    assert sorted(p.name for p in run_dir.glob("*-*")) == ["model-40.d3", "rng-40.pkl"]
    evaluations = json.loads((run_dir / "progress.json").read_text())["evaluations"]
    assert {"critic_loss", "actor_loss"} <= set(evaluations[-1]["losses"])
    # The run's wall time goes on across the kill: the first invocation's part is counted.
    assert evaluations[0]["wall_s"] == 1000.0 < resumed.wall_s <= 1000.0 + took
    assert resumed.wall_s == evaluations[1]["wall_s"] and resumed.wall_whole_run
    whole_evaluations = json.loads((spec.run_dir(tmp_path / "whole") / "progress.json").read_text())
    q_means = [e["q_mean"] for e in evaluations]
    assert q_means == [e["q_mean"] for e in whole_evaluations["evaluations"]]
    # The stored checkpoint gives back the critics whose values the last evaluation recorded.
    step, model = peer_values.last_checkpoint(run_dir)
    transitions = load_task(TASK).transitions
    values = peer_values.peer_values("td3bc", TASK, transitions, model)
    assert step == 40 and len(values) == min(peer_learner.VALUE_ROWS, len(transitions.rewards))
    assert float(values.mean()) == pytest.approx(q_means[-1], rel=1e-6)
    store.append(tmp_path / "killed" / "runs.jsonl", [resumed])
    load, loaded = peer_values.peer_values, []

    def a_running_peer_moves_on_first(agent, task, transitions, model):
        if not loaded:  # the next checkpoint is written and this one deleted before it is read
            loaded.append(model.name)
            shutil.copy(model, model.with_name("model-60.d3"))
            model.unlink()
        return load(agent, task, transitions, model)

    monkeypatch.setattr(peer_values, "peer_values", a_running_peer_moves_on_first)
    assert peer_values.latest_values("td3bc", TASK, transitions, run_dir)[0] == 60
    assert loaded == ["model-40.d3"]
    (run_dir / "model-60.d3").rename(model)
    monkeypatch.setattr(peer_values, "peer_values", load)
    (row,) = peer_values.value_table(tmp_path / "killed")
    assert row.startswith(f"| td3bc | {TASK} | 3 | 40 | {values.mean():.1f} (")
    assert row.endswith("| — |")  # no run of ours in this store
    key = dataclasses.replace(resumed, wall_s=0.0).key
    assert (
        key.implementation == "d3rlpy"
        and key != dataclasses.replace(resumed, implementation=store.OURS).key
    )


@pytest.mark.slow
def test_d3rlpys_td3bc_update_is_ours_step_for_step_in_float64():
    pytest.importorskip("d3rlpy", reason="needs offrl[peers]")
    # In a child process: the check turns on JAX's float64 for its whole process.
    script = (
        "import json, math\n"
        "from benchmarks.peer_step_check import gaps\n"
        "print(json.dumps({s: {k: v for k, v in g.items() if not math.isnan(v)}"
        " for s, g in gaps(20, 0, report=(1, 2, 20))}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=600
    )
    steps = json.loads(done.stdout.strip().splitlines()[-1])
    assert list(steps) == ["0", "1", "2", "20"]
    for step, gap in steps.items():
        loss_gap = gap.pop("critic_loss", 0.0)  # d3rlpy reports it rounded to float32
        assert loss_gap <= 1e-6 * gap.pop("d3rlpy_critic_loss", 1.0), step
        assert max(gap.values()) < 1e-12, (step, gap)
