"""A behaviour run's run.json as a typed record: the layout `offrl behavior train` has always
written reads and writes back to the same bytes; another folder's run.json is a clear error."""

from __future__ import annotations

import json

import pytest

from offrl.agent import DatasetSpec
from offrl.behavior.run_record import BehaviorRun, read_behavior_run, write_behavior_run
from offrl.behavior.runs import read_run, train_command
from offrl.run_files import RunFolderError

# A run.json as train_behavior wrote it before the record existed (json.dumps of a dict).
WRITTEN = {
    "kind": "behavior",
    "env": "Walker2d-v5",
    "seed": 0,
    "config": {"actor_lr": 0.0003, "batch_size": 256, "hidden_dims": [256, 256], "tau": 0.005},
    "protocol": {"checkpoint_every": 10000, "eval_every": 5000, "steps": 1000000},
    "spec": {"action_dim": 6, "max_action": 1.0, "obs_dim": 17},
}


def test_a_written_run_reads_back_and_writes_the_same_bytes(tmp_path):
    text = json.dumps(WRITTEN, indent=2, sort_keys=True)
    (tmp_path / "run.json").write_text(text)
    run = read_behavior_run(tmp_path)
    assert run.env == "Walker2d-v5" and run.spec == DatasetSpec(17, 6, 1.0)
    assert run.config["hidden_dims"] == [256, 256]
    write_behavior_run(tmp_path / "again", run)
    assert (tmp_path / "again" / "run.json").read_text() == text
    assert train_command(run).endswith("--checkpoint-every 10000 --eval-every 5000")


def test_a_new_run_is_written_with_its_kind(tmp_path):
    run = BehaviorRun(env="Hopper-v5", seed=1, config={}, protocol={}, spec=DatasetSpec(11, 3))
    write_behavior_run(tmp_path, run)
    assert json.loads((tmp_path / "run.json").read_text())["kind"] == "behavior"
    assert read_behavior_run(tmp_path) == run


def test_another_run_json_names_the_file_and_the_field(tmp_path):
    assert read_behavior_run(tmp_path) is None
    (tmp_path / "run.json").write_text(json.dumps({"agent": "td3bc", "seeds": [0]}))
    with pytest.raises(RunFolderError, match=r"run\.json is not a behaviour run's .*kind"):
        read_run(tmp_path, None)
    (tmp_path / "run.json").write_text(json.dumps(WRITTEN | {"seed": "zero"}))
    with pytest.raises(RunFolderError, match="seed is 'zero'"):
        read_behavior_run(tmp_path)
