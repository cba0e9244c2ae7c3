"""fit_many: several datasets of one shape, every (dataset, seed) run in one compiled program, each
ending with the numbers of its own `fit` call (same seeds, up to float rounding)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import HOPPER_DATASET_ID

from agents import A2PR, GGDTD, PRDC, TD3BC
from offrl import train, train_group
from offrl.checkpoint import saved_steps
from offrl.data.registry import load_task
from offrl.data.transitions import FIELDS, Transitions
from offrl.errors import ConfigError
from offrl.run_manifest import read_run_manifest
from offrl.train import fit
from offrl.train_group import GroupMember, fit_many

TASK = f"minari/{HOPPER_DATASET_ID}"
SMALL = {"hidden_dims": (64, 64), "batch_size": 64}
# Three datasets of one shape: different rows, sizes, normalisers (the longest sets the padding).
SLICES = ((0, 1500), (200, 900), (600, 1400))
PROTOCOL = {"seeds": [0, 1], "steps": 200, "eval_every": 100, "eval_episodes": 2}


@pytest.fixture(scope="module")
def loaded(hopper_dataset):
    return load_task(TASK)


def rows_of(transitions: Transitions, start: int, stop: int) -> Transitions:
    return Transitions(**{f: np.asarray(getattr(transitions, f))[start:stop] for f in FIELDS})


@pytest.fixture(scope="module")
def datasets(loaded) -> list[Transitions]:
    return [rows_of(loaded.transitions, *bounds) for bounds in SLICES]


def assert_same_numbers(ours, theirs) -> None:
    """Equal up to float rounding: leaves within 1e-5 (integer leaves: equal)."""
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def assert_same_records(ours: list[dict], theirs: list[dict]) -> None:
    """Same records field by field; losses and returns equal up to float rounding."""
    assert [(r["seed"], r["step"]) for r in ours] == [(r["seed"], r["step"]) for r in theirs]
    for a, b in zip(ours, theirs, strict=True):
        assert set(a) == set(b)
        assert {k: v for k, v in a.items() if k not in ("losses", "updates_per_s", "wall_s")} == {
            k: pytest.approx(v, rel=1e-5, abs=1e-6) if isinstance(v, float) else v
            for k, v in b.items()
            if k not in ("losses", "updates_per_s", "wall_s")
        }
        assert a["losses"] == pytest.approx(b["losses"], rel=1e-5, abs=1e-6, nan_ok=True)


@pytest.fixture(scope="module")
def one_by_one(loaded, datasets, tmp_path_factory):
    folder = tmp_path_factory.mktemp("one-by-one")
    config = TD3BC.Config(**SMALL)
    return [
        fit(
            TD3BC,
            data,
            config,
            task=loaded.task,
            out_dir=folder / f"run{i}",
            progress=False,
            overlap_evaluation=False,  # the group evaluates beside training: the same numbers
            **PROTOCOL,
        )
        for i, data in enumerate(datasets)
    ]


@pytest.fixture(scope="module")
def grouped(loaded, datasets, tmp_path_factory):
    folder = tmp_path_factory.mktemp("grouped")
    members = [
        GroupMember(data, loaded.task, folder / f"run{i}") for i, data in enumerate(datasets)
    ]
    return fit_many(TD3BC, members, TD3BC.Config(**SMALL), progress=False, **PROTOCOL)


def test_a_group_ends_with_the_numbers_of_its_runs_one_by_one(one_by_one, grouped):
    """TD3+BC on three datasets x two seeds in one program: states, losses and evaluation
    returns and scores of each run equal those of its own `fit` call."""
    for alone, member in zip(one_by_one, grouped, strict=True):
        assert_same_numbers(member.carry, alone.carry)
        assert_same_numbers(member.normalizer, alone.normalizer)
        assert_same_records(member.records, alone.records)


def test_each_member_folder_is_the_folder_of_its_own_fit(one_by_one, grouped):
    """run.json as `fit` writes it, records.jsonl as `fit` writes it (so the bench stores each
    run as before), checkpoints at every evaluation."""
    for alone, member in zip(one_by_one, grouped, strict=True):
        ours, theirs = read_run_manifest(member.run_dir), read_run_manifest(alone.run_dir)
        assert ours == theirs
        lines = [json.loads(line) for line in (member.run_dir / "records.jsonl").open()]
        assert_same_records(lines, member.records)
        assert sorted(p.name for p in (member.run_dir / "checkpoints").iterdir()) == ["100", "200"]


def test_a_group_folder_resumes_under_fit_and_a_lagging_folder_trains_apart(
    loaded, datasets, grouped, tmp_path
):
    """A folder one checkpoint behind (interrupted) and a fresh one: they cannot share a program
    (different steps), so each trains in its own, and both end as their uninterrupted runs; a
    finished group folder is finished for `fit` too."""
    config = TD3BC.Config(**SMALL)
    behind = tmp_path / "behind"
    shutil.copytree(grouped[0].run_dir, behind)
    shutil.rmtree(behind / "checkpoints" / "200")
    members = [
        GroupMember(datasets[0], loaded.task, behind),
        GroupMember(datasets[1], loaded.task, tmp_path / "fresh"),
    ]
    resumed = fit_many(TD3BC, members, config, progress=False, **PROTOCOL)
    for ours, theirs in zip(resumed, grouped[:2], strict=True):
        assert_same_numbers(ours.carry, theirs.carry)
    assert_same_records(resumed[0].records, [r for r in grouped[0].records if r["step"] == 200])
    finished = fit(
        TD3BC,
        datasets[2],
        config,
        task=loaded.task,
        out_dir=grouped[2].run_dir,
        progress=False,
        **PROTOCOL,
    )
    assert finished.records == []
    assert_same_numbers(finished.carry, grouped[2].carry)


@pytest.mark.parametrize("grouped_run", [False, True], ids=["fit", "fit_many"])
def test_a_chunk_is_checkpointed_once_its_evaluation_is_done_not_a_chunk_later(
    loaded, datasets, tmp_path, monkeypatch, grouped_run
):
    """Evaluated in turn (so done at once), chunk 1's checkpoint is on disk after the first scan
    of chunk 2, not only when chunk 2 ends: once an evaluation is done, a kill loses at most the
    chunk in training."""
    module = train_group if grouped_run else train
    run_scans = module.run_scans
    seen = []

    def watching(*args):
        for scanned in run_scans(*args):
            yield scanned  # resumed once the loop has handled this scan
            seen.append(saved_steps(tmp_path / "run0"))

    monkeypatch.setattr(module, "run_scans", watching)
    protocol = {**PROTOCOL, "progress": False, "overlap_evaluation": False, "log_every": 50}
    config = TD3BC.Config(**SMALL)
    if grouped_run:
        members = [
            GroupMember(d, loaded.task, tmp_path / f"run{i}") for i, d in enumerate(datasets)
        ]
        fit_many(TD3BC, members, config, **protocol)
    else:
        fit(TD3BC, datasets[0], config, task=loaded.task, out_dir=tmp_path / "run0", **protocol)
    assert seen == [[], [], [100], [100]]  # after the scans ending at steps 50, 100, 150, 200
    assert saved_steps(tmp_path / "run0") == [100, 200]


@pytest.mark.parametrize(
    ("agent", "config"),
    [
        pytest.param(PRDC, PRDC.Config(**SMALL, search="jax", memory=0), id="prdc-jax"),
        # FAISS on CPU: the members train one after another, each in its own program.
        pytest.param(PRDC, PRDC.Config(**SMALL), id="prdc-faiss"),
        # Minutes of compiling on 2 cores.
        pytest.param(GGDTD, GGDTD.Config(**SMALL), id="ggdtd", marks=pytest.mark.slow),
        pytest.param(
            A2PR,
            A2PR.Config(**SMALL, critic_hidden_dims=(64, 64), vae_hidden_dims=(64, 64)),
            id="a2pr",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_other_agents_in_a_group_equal_their_runs_one_by_one(datasets, agent, config):
    """Without evaluation: final states and losses of every run. PRDC's `jax` search stacks the
    datasets' constraints (padded keys never answer); its FAISS indexes do not stack."""
    protocol = {"seeds": [0, 1], "steps": 40, "eval_every": 40, "progress": False}
    alone = [fit(agent, data, config, **protocol) for data in datasets[:2]]
    members = [GroupMember(data) for data in datasets[:2]]
    for ours, theirs in zip(fit_many(agent, members, config, **protocol), alone, strict=True):
        assert_same_numbers(ours.carry, theirs.carry)
        for a, b in zip(ours.records, theirs.records, strict=True):
            assert a["losses"] == pytest.approx(b["losses"], rel=1e-5, abs=1e-6, nan_ok=True)


def test_a_group_needs_one_shape_and_a_folder_per_member(datasets, tmp_path):
    config = TD3BC.Config(**SMALL)
    narrower = datasets[1].replace(
        observations=np.asarray(datasets[1].observations)[:, :5],
        next_observations=np.asarray(datasets[1].next_observations)[:, :5],
    )
    with pytest.raises(ConfigError, match="equal observation and action sizes"):
        fit_many(TD3BC, [GroupMember(datasets[0]), GroupMember(narrower)], config, steps=10)
    twice = [GroupMember(data, None, tmp_path / "run") for data in datasets[:2]]
    with pytest.raises(ConfigError, match="one run folder per member"):
        fit_many(TD3BC, twice, config, steps=10)
    assert not Path(tmp_path / "run").exists()
