"""run.json as a typed record: one writer, one reader, a renamed field is a loud error."""

from __future__ import annotations

import dataclasses
import json

import pytest

from offrl.agent import DatasetSpec
from offrl.json_records import UNRECORDED
from offrl.run_files import RunFolderError
from offrl.run_manifest import (
    Normalization,
    RunManifest,
    differing_fields,
    read_run_manifest,
    write_run_manifest,
)

MANIFEST = RunManifest(
    agent="td3bc",
    behavior_version=1,
    task="offrl/hopper/medium-v0",
    config={"alpha": 2.5, "hidden_dims": [256, 256]},
    seeds=(0, 1),
    eval_every=500,
    eval_episodes=10,
    steps=2000,
    checksum="ab" * 32,
    dataset_size=1000,
    spec=DatasetSpec(11, 3, 1.0),
    normalizer=Normalization(mean=(0.5,) * 11, std=(1.25,) * 11),
    offrl_version="0.1.0",
    git_commit=None,
)


def test_a_written_manifest_reads_back_and_writes_the_same_bytes(tmp_path):
    write_run_manifest(tmp_path, MANIFEST)
    first = (tmp_path / "run.json").read_bytes()
    read = read_run_manifest(tmp_path)
    assert read == MANIFEST
    write_run_manifest(tmp_path, read)
    assert (tmp_path / "run.json").read_bytes() == first
    assert json.loads(first)["spec"] == {"obs_dim": 11, "action_dim": 3, "max_action": 1.0}


def test_a_renamed_or_missing_field_names_the_file_and_the_field(tmp_path):
    write_run_manifest(tmp_path, MANIFEST)
    value = json.loads((tmp_path / "run.json").read_text())
    value["eval_interval"] = value.pop("eval_every")
    (tmp_path / "run.json").write_text(json.dumps(value))
    with pytest.raises(RunFolderError, match=r"run\.json .*eval_every is missing"):
        read_run_manifest(tmp_path)
    value["eval_every"] = "often"
    del value["eval_interval"]
    (tmp_path / "run.json").write_text(json.dumps(value))
    with pytest.raises(RunFolderError, match="eval_every is 'often'"):
        read_run_manifest(tmp_path)


def test_a_folder_from_before_behaviour_versions_reads_as_version_1(tmp_path):
    write_run_manifest(tmp_path, MANIFEST)
    value = json.loads((tmp_path / "run.json").read_text())
    del value["behavior_version"]
    (tmp_path / "run.json").write_text(json.dumps(value))
    read = read_run_manifest(tmp_path)
    assert read.behavior_version is UNRECORDED and read.version == 1


def test_resuming_compares_the_settings_that_change_results():
    more_steps = dataclasses.replace(MANIFEST, steps=9000, git_commit="x")
    assert differing_fields(MANIFEST, more_steps) == []
    other = dataclasses.replace(MANIFEST, seeds=(0,), checksum="cd" * 32)
    assert differing_fields(MANIFEST, other) == ["seeds", "checksum"]


def test_a_config_field_added_since_leaves_stored_runs_their_hash_and_run_json():
    """critic_layer_norm came after runs were stored: at its default it is not in the canonical
    config, so those runs keep their store key and still resume."""
    from agents import TD3BC
    from benchmarks.store import config_hash
    from offrl.agent import canonical_config

    plain, layer_norm = TD3BC.Config(), TD3BC.Config(critic_layer_norm=True)
    stored = canonical_config(plain)
    assert "critic_layer_norm" not in stored and stored["hidden_dims"] == [256, 256]
    assert config_hash(plain) == config_hash(stored)
    assert canonical_config(layer_norm)["critic_layer_norm"] is True
    assert config_hash(layer_norm) != config_hash(plain)
    # The hash TD3+BC's stored default-config runs carry (leaderboard/runs.jsonl, repro store).
    assert config_hash(plain).startswith("782d3e2a")
