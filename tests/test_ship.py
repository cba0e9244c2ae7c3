"""Shipped behaviour policies: choosing snapshots, the manifest, hash checks, the CLI.

A tiny real SAC run (3000 Hopper steps, a snapshot every 250) is trained once per session and
shipped with the development override into a temp policies folder; `tiny_policies` is shared
with test_generate.py. The slow test re-measures the repository's shipped policies.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from offrl.agent import DatasetSpec
from offrl.behavior import manifest, measure, runs, sac, selection, ship
from offrl.behavior.online import OnlineProtocol, train_behavior
from offrl.behavior.run_record import BehaviorRun
from offrl.cli import main
from offrl.errors import ConfigError, DatasetError

TINY_PROTOCOL = OnlineProtocol(
    steps=3000,
    start_steps=250,
    update_after=250,
    update_every=50,
    eval_every=250,
    checkpoint_every=3000,
    eval_episodes=3,
)
TINY_CONFIG = sac.Config(hidden_dims=(32, 32), batch_size=64)
TINY_EPISODES = 5


def tiny_run(base: Path) -> Path:
    """The session's tiny SAC run on Hopper-v5 (a finished run is not trained again)."""
    return train_behavior(
        "Hopper-v5", base / "tiny-sac-hopper", TINY_CONFIG, TINY_PROTOCOL, progress=False
    )


def tiny_replay_run(base: Path) -> Path:
    """The tiny run's first 1500 steps again, saving a snapshot every 150 steps instead of 250."""
    protocol = dataclasses.replace(TINY_PROTOCOL, steps=1500, eval_every=150, checkpoint_every=1500)
    return train_behavior(
        "Hopper-v5", base / "tiny-sac-hopper-replay", TINY_CONFIG, protocol, progress=False
    )


def tiny_policies(base: Path) -> Path:
    """A policies folder holding the tiny run, shipped once with the below-threshold override."""
    folder = base / "tiny-policies"
    if not (folder / manifest.MANIFEST_NAME).is_file():
        ship.ship(
            tiny_run(base),
            "Hopper-v5",
            folder,
            episodes=TINY_EPISODES,
            allow_below_threshold=True,
            progress=False,
        )
    return folder


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> Path:
    return tiny_policies(tmp_path_factory.getbasetemp())


@pytest.fixture
def policies_copy(shipped, tmp_path, monkeypatch) -> Path:
    """A private copy of the shipped folder, made the default one: tests may break it."""
    folder = tmp_path / "policies"
    shutil.copytree(shipped, folder)
    monkeypatch.setenv(manifest.POLICIES_ENV_VAR, str(folder))
    return folder


# --- choosing snapshots (pure functions) ------------------------------------------------------


def test_replay_phases_follow_training_time():
    # Uniform warm-up for 10k steps, then each snapshot plays until the next one is saved.
    phases = selection.replay_phases([10_000, 20_000, 30_000, 40_000], 40_000, 10_000)
    assert phases == [(None, 10_000), (10_000, 10_000), (20_000, 10_000), (30_000, 10_000)]
    # A first snapshot after the warm-up also stands for the steps before it.
    assert selection.replay_phases([2_000, 4_000], 5_000, 1_000) == [
        (None, 1_000), (2_000, 3_000), (4_000, 1_000),
    ]  # fmt: skip
    assert sum(steps for _, steps in phases) == 40_000


def test_thinning_keeps_the_proportions():
    phases = [(None, 100)] + [(step, 10) for step in range(1, 41)]
    thinned = selection.thin_phases(phases, 20)
    assert thinned[0] == (None, 100)
    assert len(thinned) == 21 and thinned[1][0] == 1 and thinned[-1][0] == 40
    assert sum(steps for _, steps in thinned) == sum(steps for _, steps in phases)
    assert selection.thin_phases(phases[:5], 20) == phases[:5]


def test_medium_window_stops_once_training_clearly_passed_medium():
    recorded = {10: 100.0, 20: 900.0, 30: 2500.0, 40: 1000.0}
    assert selection.medium_window(recorded, 1000.0) == [10, 20]


def test_train_command_names_the_non_default_settings():
    run = BehaviorRun(
        env="Hopper-v5",
        seed=3,
        config={"hidden_dims": [32, 32], "batch_size": 256},
        protocol={"steps": 1_000_000, "eval_every": 5_000},
        spec=DatasetSpec(11, 3),
    )
    assert runs.train_command(run) == (
        "offrl behavior train --env Hopper-v5 --out runs/behavior/hopper --seed 3 "
        "--hidden-dims 32 32 --eval-every 5000"
    )


# --- shipping a real run ----------------------------------------------------------------------


def test_manifest_records_measured_policies(shipped):
    entry = manifest.read_policy_manifest(shipped).envs["hopper"]
    assert entry.env_id == "Hopper-v5" and entry.obs_dim == 11 and entry.action_dim == 3
    assert entry.evaluation.episodes == TINY_EPISODES
    assert entry.expert.below_threshold is True and entry.expert_min_return == 3000.0
    assert entry.training.seed == 0 and entry.training.trained_steps == 3000
    assert entry.training.command.startswith("offrl behavior train --env Hopper-v5")
    assert entry.training.replay_command is None
    assert (shipped / entry.training.curve).stat().st_size > 10_000
    medium, expert = entry.medium, entry.expert
    assert medium.step < expert.step
    assert expert.return_mean > entry.random.return_mean
    assert medium.target == pytest.approx(expert.return_mean / 3)
    # The replay phases cover training from step 0 up to the medium snapshot, in order.
    replay = entry.replay
    assert replay[0] == manifest.RandomPhase(steps=250)
    assert sum(p.steps for p in replay) == medium.step
    steps = [p.step for p in replay[1:]]
    assert steps == sorted(steps) and all(s < medium.step for s in steps)
    for policy in [medium, expert, *replay[1:]]:
        path = shipped / policy.file
        assert manifest.sha256_file(path) == policy.sha256
        assert np.isfinite(policy.return_mean) and policy.return_std >= 0


def test_shipped_policy_is_the_snapshot_and_measures_the_same(shipped, tmp_path_factory):
    entry = manifest.read_policy_manifest(shipped).envs["hopper"]
    run = tiny_run(tmp_path_factory.getbasetemp())
    source = runs.snapshot_path(run, entry.expert.step)
    assert (shipped / entry.expert.file).read_bytes() == source.read_bytes()
    params = manifest.load_actor(entry, entry.expert, shipped)
    returns_of, envs = measure.episode_returns_of("Hopper-v5", TINY_EPISODES)
    try:
        returns = returns_of(measure.actor_policy(manifest.actor_module(entry), params))
    finally:
        envs.close()
    assert returns.mean() == pytest.approx(entry.expert.return_mean, rel=1e-6)


def test_a_changed_policy_file_is_refused(policies_copy):
    entry = manifest.read_policy_manifest().envs["hopper"]
    path = policies_copy / entry.medium.file
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="sha256") as error:
        manifest.load_actor(entry, entry.medium)
    assert str(path) in str(error.value) and "git checkout" in str(error.value)


def test_no_shipped_policies_names_the_commands(tmp_path):
    with pytest.raises(DatasetError) as error:
        manifest.env_entry("walker2d", tmp_path)
    message = str(error.value)
    assert "offrl behavior train --env Walker2d-v5" in message
    assert "offrl behavior ship --run runs/behavior/walker2d --env Walker2d-v5" in message


def test_a_folder_that_is_not_a_behaviour_run_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="not a behaviour run folder"):
        ship.ship(tmp_path, "Hopper-v5", tmp_path / "out", progress=False)


def test_a_replay_run_adds_its_snapshots_to_the_replay_phases(shipped, tmp_path_factory, tmp_path):
    base = tmp_path_factory.getbasetemp()
    run, replay_run = tiny_run(base), tiny_replay_run(base)
    plain = manifest.read_policy_manifest(shipped).envs["hopper"]
    entry = ship.ship(
        run,
        "Hopper-v5",
        tmp_path / "policies",
        replay_run=replay_run,
        episodes=TINY_EPISODES,
        replay_snapshots=100,
        allow_below_threshold=True,
        progress=False,
    ).entry
    # Expert and medium are still picked from the run's own evaluations.
    assert entry.medium.step == plain.medium.step > 300
    assert entry.expert.step == plain.expert.step
    medium = entry.medium.step
    saved = set(runs.recorded_returns(run)) | set(runs.recorded_returns(replay_run))
    steps = [p.step for p in entry.replay[1:]]
    # A snapshot saved during the uniform warm-up played nothing, so it is not a phase.
    assert steps == sorted(s for s in saved if TINY_PROTOCOL.start_steps <= s < medium)
    assert {300, 450} <= set(steps) and len(steps) > len(plain.replay) - 1
    assert sum(p.steps for p in entry.replay) == medium
    for policy in entry.replay[1:]:
        source = run if policy.step % 250 == 0 else replay_run
        shipped_file = tmp_path / "policies" / policy.file
        assert shipped_file.read_bytes() == runs.snapshot_path(source, policy.step).read_bytes()
    command = entry.training.replay_command.split(" --")
    assert command[1] == "env Hopper-v5" and {"steps 1500", "eval-every 150"} <= set(command)


@pytest.mark.parametrize("change", ["snapshot", "seed"])
def test_a_replay_run_of_another_training_is_refused(tmp_path_factory, tmp_path, capsys, change):
    base = tmp_path_factory.getbasetemp()
    run, replay_run = tiny_run(base), tiny_replay_run(base)
    other = tmp_path / "other-replay"
    shutil.copytree(replay_run, other)
    if change == "snapshot":
        snapshot = runs.snapshot_path(other, 750)
        data = bytearray(snapshot.read_bytes())
        data[-1] ^= 1  # always a change, whatever the last byte was
        snapshot.write_bytes(bytes(data))
        expected = "step-750 snapshots"
    else:
        run_json = json.loads((other / "run.json").read_text())
        (other / "run.json").write_text(json.dumps(run_json | {"seed": 1}))
        expected = "differs in seed"
    out = tmp_path / "policies"
    argv = ["behavior", "ship", "--run", str(run), "--replay-run", str(other), "--out", str(out)]
    assert main([*argv, "--allow-below-threshold", "--no-progress"]) == 1
    assert expected in capsys.readouterr().err
    assert not out.exists()


# --- command line -----------------------------------------------------------------------------


def test_ship_refuses_an_expert_below_the_bar(tmp_path_factory, tmp_path, capsys):
    run = tiny_run(tmp_path_factory.getbasetemp())
    out = tmp_path / "policies"
    argv = ["behavior", "ship", "--run", str(run), "--env", "Hopper-v5", "--out", str(out)]
    assert main([*argv, "--episodes", "3", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "below the expert bar 3000 for Hopper-v5" in err and "train longer" in err
    assert not out.exists()


def test_ship_refuses_another_env(tmp_path_factory, tmp_path, capsys):
    run = tiny_run(tmp_path_factory.getbasetemp())
    argv = ["behavior", "ship", "--run", str(run), "--env", "Walker2d-v5", "--out", str(tmp_path)]
    assert main(argv) == 1
    assert "trained Hopper-v5, not Walker2d-v5" in capsys.readouterr().err


def test_ship_cli_with_the_override_reports_the_policies(tmp_path_factory, tmp_path, capsys):
    run = tiny_run(tmp_path_factory.getbasetemp())
    out = tmp_path / "policies"
    argv = ["behavior", "ship", "--run", str(run), "--out", str(out), "--episodes", "3"]
    assert main([*argv, "--allow-below-threshold", "--no-progress"]) == 0
    report = capsys.readouterr().out
    assert "expert" in report and "medium" in report and "WARNING" in report
    replay = manifest.read_policy_manifest(out).envs["hopper"].replay
    assert sorted(p.name for p in (out / "hopper").iterdir()) == sorted(
        ["curve.png", "expert.msgpack", "medium.msgpack"]
        + [Path(p.file).name for p in replay if isinstance(p, manifest.SnapshotPhase)]
    )


def test_plot_writes_the_learning_curve(tmp_path_factory, tmp_path, capsys):
    run = tiny_run(tmp_path_factory.getbasetemp())
    png = tmp_path / "curve.png"
    assert main(["behavior", "plot", "--run", str(run), "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- the repository's shipped policies ----------------------------------------------------------


def repo_entries() -> tuple[dict, Path]:
    """The repository's manifest entries (not $OFFRL_POLICIES_DIR's)."""
    folder = Path(manifest.__file__).parent / "policies"
    return manifest.read_policy_manifest(folder).envs, folder


def test_the_shipped_policies_fit_the_size_budget():
    """The issue's budget for weights, manifest and curves together: under 20 MB."""
    _, folder = repo_entries()
    assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) < 20_000_000


@pytest.mark.slow
@pytest.mark.parametrize("short", ["hopper", "halfcheetah", "walker2d"])
def test_shipped_manifest_returns_remeasure(short):
    """Each shipped policy's 100-episode return, measured again, is what the manifest says."""
    entries, folder = repo_entries()
    if short not in entries:
        pytest.skip(
            f"no {short} policies shipped in {folder} yet (train, then offrl behavior ship)"
        )
    entry = entries[short]
    assert not entry.expert.below_threshold, "repository policies must reach the bar"
    assert entry.expert.return_mean >= ship.EXPERT_MIN_RETURN[short]
    returns_of, envs = measure.episode_returns_of(entry.env_id, entry.evaluation.episodes)
    try:
        for name, policy in (("expert", entry.expert), ("medium", entry.medium)):
            params = manifest.load_actor(entry, policy, folder)
            returns = returns_of(measure.actor_policy(manifest.actor_module(entry), params))
            # Same seeds, same policy: equal up to float noise across machines.
            tolerance = 3 * policy.return_std / np.sqrt(returns.size) + 1e-3 * abs(
                policy.return_mean
            )
            assert abs(returns.mean() - policy.return_mean) <= tolerance, name
        random = returns_of(
            measure.uniform_batch_policy(envs.single_action_space, measure.EVAL_SEED)
        )
    finally:
        envs.close()
    assert random.mean() == pytest.approx(entry.random.return_mean, rel=0.05, abs=5.0)
