"""The results store: hashes, score rules, real concurrent appends, loud corruption, and records
built from a real (tiny) `offrl.train.fit` run folder."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from conftest import HOPPER_DATASET_ID

from benchmarks.store import (
    FINAL_WINDOW,
    RunKey,
    RunRecord,
    StoreError,
    append,
    config_hash,
    finished_keys,
    latest_records,
    protocol_hash,
    read_store,
    record_from_run_dir,
    records_from_run_dir,
    score_summary,
)

PROTOCOL = {"steps": 1000, "eval_every": 100, "eval_episodes": 10}


def make_record(agent: str = "td3bc", seed: int = 0, points: int = 10, **changes) -> RunRecord:
    """A hand-made record: scores 1, 2, ..., points at steps 100, 200, ..."""
    steps = [100 * (i + 1) for i in range(points)]
    scores = [float(i + 1) for i in range(points)]
    config = {"alpha": 2.5, "hidden_dims": [256, 256]}
    record = RunRecord(
        agent=agent,
        behavior_version=1,
        task="d4rl/hopper-medium-v2",
        seed=seed,
        dataset_checksum="0" * 64,
        config=config,
        config_hash=config_hash(config),
        protocol=PROTOCOL,
        protocol_hash=protocol_hash(PROTOCOL),
        git_commit=None,
        offrl_version="0.1.0",
        score_kind="normalized_score",
        curve_steps=steps,
        curve_scores=scores,
        curve_returns=[s * 30.0 for s in scores],
        **score_summary(steps, scores),
        wall_s=12.5,
        updates_per_s=1000.0,
        run_seeds=[seed],
        run_dir="runs/x",
        finished_at="2026-01-01T00:00:00+00:00",
    )
    return dataclasses.replace(record, **changes)


def test_config_hash_is_sha256_of_canonical_json_whatever_the_form():
    expected = hashlib.sha256(b'{"alpha":2.5,"dims":[64,64]}').hexdigest()
    assert config_hash({"dims": [64, 64], "alpha": 2.5}) == expected

    @dataclasses.dataclass(frozen=True)
    class Config:
        alpha: float = 2.5
        dims: tuple[int, ...] = (64, 64)

    assert config_hash(Config()) == expected  # a dataclass and its run.json dict agree
    assert config_hash(Config(alpha=2.0)) != expected


def test_protocol_hash_reads_only_the_protocol_fields():
    from offrl.train import Protocol

    extra = {**PROTOCOL, "batch_size": 256, "total_steps": 1000}
    assert protocol_hash(Protocol(1000, 100, 10)) == protocol_hash(PROTOCOL) == protocol_hash(extra)
    assert protocol_hash({**PROTOCOL, "steps": 2000}) != protocol_hash(PROTOCOL)
    with pytest.raises(StoreError, match="eval_episodes"):
        protocol_hash({"steps": 1, "eval_every": 1})


def test_final_score_is_the_mean_of_the_last_ten_evaluations():
    steps = list(range(10, 130, 10))
    scores = [0.0, 50.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    summary = score_summary(steps, scores)
    assert summary == {
        "final": 5.5,  # mean(1, ..., 10): the first two evaluations fall outside the window
        "final_window": FINAL_WINDOW,
        "last": 10.0,
        "best": 50.0,
        "best_step": 20,
    }
    short = score_summary([5, 10, 15], [3.0, 1.0, 2.0])
    assert (short["final"], short["final_window"], short["best_step"]) == (2.0, 3, 5)


def test_records_round_trip_and_keys_drive_the_skip_logic(tmp_path):
    store = tmp_path / "results" / "runs.jsonl"
    assert finished_keys(store) == set()  # a first bench: nothing to skip
    records = [make_record(seed=s) for s in range(3)]
    append(store, records)
    assert read_store(store) == records
    key = RunKey(
        "td3bc",
        1,
        "d4rl/hopper-medium-v2",
        1,
        records[1].config_hash,
        protocol_hash(PROTOCOL),
        records[1].dataset_checksum,
    )
    assert key in finished_keys(store)
    assert key._replace(seed=7) not in finished_keys(store)
    assert key._replace(dataset_checksum="f" * 64) not in finished_keys(store)
    assert key._replace(behavior_version=2) not in finished_keys(store)
    assert key._replace(implementation="d3rlpy") not in finished_keys(store)


def test_records_of_older_schemas_read_as_offrl_runs_of_version_1(tmp_path):
    """Schema-1 lines (every agent then at its first version) read as version 1; schema 1 and 2
    lines (no peers yet) as offrl's own runs; schema 1 to 3 lines (no whole-run wall times yet)
    as holding their finishing invocation's wall time."""
    store = tmp_path / "runs.jsonl"
    current = json.loads(make_record().to_line())
    schema_3 = {k: v for k, v in current.items() if k != "wall_whole_run"} | {"schema": 3}
    schema_2 = {k: v for k, v in schema_3.items() if k != "implementation"} | {"schema": 2}
    schema_1 = {k: v for k, v in schema_2.items() if k != "behavior_version"} | {"schema": 1}
    for old in (schema_1, schema_2, schema_3):
        store.write_text(json.dumps(old) + "\n")
        (record,) = read_store(store)
        assert record == make_record(wall_whole_run=False) and record.schema == 4
        assert record.behavior_version == 1 and not record.is_peer
    store.write_text(json.dumps({**current, "schema": 5}) + "\n")
    with pytest.raises(StoreError, match="record schema 5, this offrl reads 1 to 4"):
        read_store(store)


def test_a_forced_rerun_replaces_the_earlier_record():
    first, other, rerun = make_record(seed=0), make_record(seed=1), make_record(seed=0, wall_s=99.0)
    assert latest_records([first, other, rerun]) == [rerun, other]


APPENDER = textwrap.dedent(
    """
    import dataclasses, json, pathlib, sys, time
    from benchmarks.store import RunRecord, append
    folder, worker, count = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    template = RunRecord.from_dict(json.loads((folder / "template.json").read_text()), "template")
    (folder / f"ready{worker}").touch()
    while not (folder / "go").exists():  # all workers begin together
        time.sleep(0.001)
    for i in range(count):
        append(folder / "runs.jsonl", [dataclasses.replace(template, agent=f"w{worker}", seed=i)])
    """
)


def test_concurrent_appends_from_real_processes_lose_nothing(tmp_path):
    """Six processes append 30 records of ~15 kB each at once (far above the 4 kB a pipe
    writes atomically): every record comes back whole."""
    (tmp_path / "template.json").write_text(make_record(points=400).to_line())
    workers = [
        subprocess.Popen([sys.executable, "-c", APPENDER, str(tmp_path), str(w), "30"])
        for w in range(6)
    ]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("ready*"))) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    (tmp_path / "go").touch()
    assert [w.wait(timeout=60) for w in workers] == [0] * 6
    lines = (tmp_path / "runs.jsonl").read_text().split("\n")
    assert lines[-1] == "" and len(lines) == 6 * 30 + 1
    assert min(len(line) for line in lines[:-1]) > 4096
    keys = {(r.agent, r.seed) for r in read_store(tmp_path / "runs.jsonl")}
    assert keys == {(f"w{w}", i) for w in range(6) for i in range(30)}


def test_a_corrupt_line_is_named_and_a_torn_line_does_not_swallow_the_next(tmp_path):
    store = tmp_path / "runs.jsonl"
    append(store, [make_record(seed=0)])
    with open(store, "a") as f:
        f.write('{"agent": "td3bc", "ta')  # a write torn by a crash
    append(store, [make_record(seed=1)])
    with pytest.raises(StoreError, match=r"runs\.jsonl, line 2: not valid JSON"):
        read_store(store)
    lines = store.read_text().splitlines()
    store.write_text(lines[0] + "\n" + lines[2] + "\n")  # the fix the message suggests
    assert [r.seed for r in read_store(store)] == [0, 1]


def test_unreadable_stores_fail_loudly(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        read_store(tmp_path / "missing.jsonl")
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text(json.dumps({"schema": 1, "agent": "td3bc"}) + "\n")
    with pytest.raises(StoreError, match=r"wrong\.jsonl, line 1: not a run record"):
        read_store(wrong)
    wrong.write_text("[1, 2]\n")
    with pytest.raises(StoreError, match="line 1: a JSON list"):
        read_store(wrong)


@pytest.fixture(scope="module")
def tiny_run(hopper_dataset, tmp_path_factory):
    """A real finished run: TD3BC, seeds 0 and 1, 30 steps, evaluated in Hopper-v5 every 10."""
    from agents import TD3BC
    from offrl.data.registry import load_task
    from offrl.train import fit

    loaded = load_task(f"minari/{HOPPER_DATASET_ID}")
    config = TD3BC.Config(hidden_dims=(32, 32), batch_size=32)
    run_dir = tmp_path_factory.mktemp("tiny") / "run"
    fit(
        TD3BC,
        loaded.transitions,
        config,
        seeds=[0, 1],
        steps=30,
        eval_every=10,
        eval_episodes=1,
        task=loaded.task,
        out_dir=run_dir,
        progress=False,
    )
    return run_dir, config, loaded


def test_record_from_a_real_run_folder(tiny_run):
    run_dir, config, loaded = tiny_run
    evaluations = [
        json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()
    ]
    mine = [e for e in evaluations if e["seed"] == 1]
    record = record_from_run_dir(run_dir, seed=1, wall_s=3.0)
    # The test dataset has no reference scores, so its scores are raw returns, and say so.
    assert record.score_kind == "return" and mine[0]["normalized_score"] is None
    assert (record.agent, record.task, record.seed) == ("td3bc", loaded.task.name, 1)
    assert record.dataset_checksum == loaded.checksum
    assert record.config_hash == config_hash(config)
    assert record.protocol == {"steps": 30, "eval_every": 10, "eval_episodes": 1}
    assert record.key.protocol_hash == protocol_hash(record.protocol)
    assert record.curve_steps == [10, 20, 30]
    assert record.curve_scores == [e["return"] for e in mine] == record.curve_returns
    assert record.final == pytest.approx(np.mean(record.curve_scores))
    assert record.final_window == 3  # fewer evaluations than the window
    assert (record.last, record.best) == (mine[-1]["return"], max(record.curve_scores))
    expected_rate = 30 / sum(10 / e["updates_per_s"] for e in mine)
    assert record.updates_per_s == pytest.approx(expected_rate)
    # The run's own wall time (its last records'), not the caller's measurement.
    assert 0 < mine[-1]["wall_s"] != 3.0 and record.wall_whole_run
    assert (record.wall_s, record.run_seeds, record.run_dir) == (
        mine[-1]["wall_s"],
        [0, 1],
        str(run_dir),
    )
    both = records_from_run_dir(run_dir, wall_s=3.0)
    assert [r.seed for r in both] == [0, 1]
    assert dataclasses.replace(both[1], finished_at=record.finished_at) == record


def test_records_without_the_runs_wall_time_take_the_callers(tiny_run, tmp_path):
    """Records of an offrl before `wall_s` (or resumed from them): the finishing invocation's."""
    run_dir, _, _ = tiny_run
    older = tmp_path / "older"
    shutil.copytree(run_dir, older)
    rows = [json.loads(line) for line in (older / "records.jsonl").read_text().splitlines()]
    for row in rows:
        row.pop("wall_s")
    (older / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    record = record_from_run_dir(older, seed=0, wall_s=3.0)
    assert (record.wall_s, record.wall_whole_run) == (3.0, False)


def test_unfinished_or_foreign_run_folders_are_refused(tiny_run, tmp_path):
    run_dir, _, _ = tiny_run
    with pytest.raises(StoreError, match="not seed 5"):
        record_from_run_dir(run_dir, seed=5, wall_s=1.0)
    cut = tmp_path / "cut"
    shutil.copytree(run_dir, cut)
    lines = (cut / "records.jsonl").read_text().splitlines()
    (cut / "records.jsonl").write_text("\n".join(lines[:2]) + "\n")  # step 10 only
    with pytest.raises(
        StoreError, match="not finished: seed 0 was last evaluated at step 10 of 30"
    ):
        record_from_run_dir(cut, seed=0, wall_s=1.0)
    with pytest.raises(StoreError, match=r"no run\.json"):
        record_from_run_dir(tmp_path, seed=0, wall_s=1.0)
